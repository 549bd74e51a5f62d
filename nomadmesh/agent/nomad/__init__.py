"""The dev agent's Nomad half: jobs, evaluations, the scheduler, deployments and allocations.

Pure planning (spec, reconcile, feasibility, reschedule, planner, health, services, the Connect and
ingress job hooks) and the I/O edges: the runner, which runs allocations through Platform (the one
door to agent/runtime), and the deployment watcher. scheduler.py wires them into one loop.
"""
