"""The dev agent's Nomad half: jobs, evaluations, the scheduler, deployments and allocations.

Pure: spec (the jobspec seam), reconcile, feasibility, reschedule, planner, evals.decide, health,
services, task_plan, and the Connect and ingress job hooks. I/O edges: evals.process (decide, then
write in one transaction), the runner (runs allocations through Platform, the one door to
agent/runtime), the deployment watcher, sidecar_stats (a sidecar's Envoy figures) and migrations
(what older agents stored, brought up to date once at start). scheduler.py wires them into one loop.
"""
