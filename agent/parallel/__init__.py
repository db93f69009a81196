"""Parallel work on Ray: the engine (agent.parallel.engine), the memory a job's workers share
(agent.parallel.job_memory) and the tasks it runs (agent.parallel.investigation_task). Ray is imported
inside functions only: `interp --help` never pays for it."""
