"""The dev agent's scheduler parts: pure planning (reconcile, feasibility, health, services) and the
I/O edges that run allocations (runner) and watch deployments. nomadmesh/agent/scheduler.py wires them."""
