"""The control-plane process: configuration, component supervision, wiring and the run loop.

``atoll.cp.config`` (``CpConfig``, ``OPTIONS``, ``load_config``; the rules between options in
``atoll.cp.config_rules``), ``atoll.cp.run`` (``run_cp``),
``atoll.cp.components`` (``Component``, ``Supervisor``, ``HttpServer``). Submodules are imported on
demand so that ``atoll --help`` does not pay for the web stack.
"""
