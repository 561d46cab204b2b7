"""SluiceBashOperator: a BashOperator whose task outcome follows sluice's exit codes.

sluice exits 0 when it is done (caught up, or stopped cleanly by a signal), 1 on a runtime
failure (a server that went away, a checkpoint that cannot be written) and 2 on a bad pipeline
file or arguments. 0 succeeds; 1 (and any other non-zero code) fails the task with the DAG's
retries, since the positions in the sink make a retry exact and a server may be back; 2 fails
it at once without retries (AirflowFailException), since the same command fails the same way
until someone fixes the file or the Variables. Exit 99 fails too (a plain BashOperator would
skip the task on 99). Imported by the DAG files next to it (the DAGs folder is on sys.path);
.airflowignore keeps the scheduler from parsing it as a DAG file.
"""

from airflow.exceptions import AirflowException, AirflowFailException, AirflowSkipException
from airflow.operators.bash import BashOperator

BAD_CONFIG_EXIT = 2


class SluiceBashOperator(BashOperator):
    def __init__(self, **kwargs):
        kwargs.setdefault("skip_on_exit_code", None)
        kwargs.setdefault("append_env", True)
        super().__init__(**kwargs)

    def execute(self, context):
        try:
            return super().execute(context)
        except AirflowSkipException:
            raise
        except AirflowException as e:
            proc = getattr(self.subprocess_hook, "sub_process", None)
            if proc is not None and proc.returncode == BAD_CONFIG_EXIT:
                raise AirflowFailException(
                    f"sluice exited {BAD_CONFIG_EXIT}: bad pipeline file or arguments (see the "
                    "log above); not retried, the same command would fail the same way") from e
            raise
