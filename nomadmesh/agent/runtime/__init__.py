"""The dev agent's task runtime: what it takes to really run a Nomad task on this machine.

A library for the scheduler, with no knowledge of HTTP or the state store:

    taskdir   AllocDirs(alloc_root).build(alloc_id, tasks) -> AllocDir; remove(alloc_id)
    env       task_env(TaskEnvInput, host_env, node_attrs) -> dict; interpolate(value, env, attrs)
    restarts  RestartPolicy.from_nomad(block, job_type); RestartTracker (pure)
    events    TaskEvent, TaskState (+ to_nomad())
    process   TaskProcess(TaskSpec, on_event).start()/stop()/detach()/state(); TaskProcess.adopt(...)
    logs      read(alloc_root, task, type, offset, origin); follow(...)
    cni       BridgeNetwork(state_dir, bridge, subnet).setup(alloc_id, port_maps)/teardown(alloc_id)
    checks    CheckRunner(on_status).add(CheckSpec)/remove(id)/stop()
"""
