"""The task runner: ``python -m kflow.runner`` runs one task of a run, in a pod or locally.

Owns nothing itself; its modules each own one concern:

==============  ==============================================================
``cli``         the command line (below), parsed into `TaskArgs`; `main`
``execute``     one task, start to end: code, inputs, step, persist, record
``inputs``      which parent tasks a task reads, from the graph (pure)
``artifacts``   lazy parent artifacts, merges by reference, what to persist
``codecache``   the per-node code package cache and importing the flow class
``logtee``      fd-level tee of stdout/stderr to the store while running
``result``      the termination message (JSON, <= 4 KB)
``exitcodes``   exit codes and the runner's error types
==============  ==============================================================

Command line (the operator's contract)::

    python -m kflow.runner --flow-file FLOW.py --code-sha256 SHA
        [--code-url s3://bucket/code/SHA.tar.gz | --code-dir DIR]
        --namespace NS --flow NAME --run-id RUN --step STEP --task TASK --attempt N
        [--param name=value ...]          # start step only (else KFLOW_RUN_<NAME>, default)
        [--tag T ...] [--origin-run-id R] [--max-user-code-retries N]
        [--trigger-run FLOW/RUN_ID]       # the @trigger_on_finish run: current.trigger

TASK is the foreach index path: ``0`` outside any foreach, ``3`` inside
one, ``3.1`` inside a nested one. The runner derives the task's parents
itself from the graph (built from the flow class in the code package) and
the store (`kflow.runner.inputs`); nothing O(N) is ever passed. Without
``--code-url`` / ``--code-dir`` the package is read from the store at
``code/<SHA>.tar.gz``. ``--max-user-code-retries`` defaults to the step's
``@retry(times)``: attempt N is the last user-code attempt when
N >= that number (``@catch`` applies there); an attempt beyond it is
``@catch``'s fallback, which does not run the step and stores a
"the step failed on every attempt" exception in the catch variable.

Environment:

==================================  ==========================================
``KFLOW_STORE_DIR``                 a local directory as the store, or
``KFLOW_S3_*``                      the S3 store (endpoint, keys, bucket,
                                    prefix; from a Secret in pods)
``KFLOW_STORE_RETRY_SECONDS``      give up on the store after this long
                                    (default 60; then exit 75)
``KFLOW_CODE_CACHE``                code cache root (``~/.cache/kflow/code``)
``KFLOW_TERMINATION_MESSAGE_PATH``  where the result JSON goes (default
                                    /dev/termination-log when writable)
``KFLOW_RUN_<NAME>``                a parameter's value (start step)
``KFLOW_USER``                      the user in ``current.username``
==================================  ==========================================

Exit codes: `kflow.runner.exitcodes` (0 ok, 1 step failed, 2 usage,
65 code package, 66 parent not done, 70 internal, 75 store unavailable,
143 terminated). The result JSON: `kflow.runner.result`. Step pods need
no Kubernetes API rights: nothing here imports the Kubernetes client.
"""
