"""What the sluice DAGs share: SluiceBashOperator, sluice_dag() and the command templates.

SluiceBashOperator: a BashOperator whose task outcome follows sluice's exit codes.

sluice exits 0 when it is done (caught up, or stopped cleanly by a signal), 1 on a runtime
failure (a server that went away, a checkpoint that cannot be written) and 2 on a bad pipeline
file or arguments. 0 succeeds; 1 (and any other non-zero code) fails the task with the DAG's
retries, since the positions in the sink make a retry exact and a server may be back; 2 fails
it at once without retries (AirflowFailException), since the same command fails the same way
until someone fixes the file or the Variables. Exit 99 fails too (a plain BashOperator would
skip the task on 99).

sluice_dag(): a DAG as every sluice DAG is made (started 2026-01-01 UTC, no catchup, one run at
a time, owner data-platform, the shell_quote filter, Params default_bin and default_project_dir
from SLUICE_BIN and SLUICE_PROJECT_DIR, retries from SLUICE_AIRFLOW_RETRIES and
SLUICE_AIRFLOW_RETRY_DELAY). BIN, PROJECT_DIR, pipeline() and variables() are the Jinja
templates of the bash commands, rendered when the task runs (Variables are not read at parse
time); run_until_caught_up() is the command of the pipeline DAGs.

Imported by the DAG files next to it (the DAGs folder is on sys.path); .airflowignore keeps the
scheduler from parsing it as a DAG file.
"""

import os
import shlex

import pendulum
from airflow import DAG
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


def setting(env_name, fallback):
    """The scheduler's environment variable env_name, else fallback."""
    return os.environ.get(env_name, fallback)


BIN = "{{ var.value.get('sluice_bin', params.default_bin) }}"
PROJECT_DIR = "{{ var.value.get('sluice_project_dir', params.default_project_dir) }}"


def pipeline(variable):
    """The pipeline file: Variable `variable`, else Param default_pipeline."""
    return "{{ var.value.get('%s', params.default_pipeline) }}" % variable


def variables(variable):
    """` --var NAME=VALUE` (shell-quoted) for each entry of the JSON Variable `variable`."""
    return ("{%% for name, value in var.json.get('%s', {}).items() %%}"
            " --var {{ (name ~ '=' ~ value) | shell_quote }}{%% endfor %%}" % variable)


def run_until_caught_up(pipeline_variable, vars_variable, prefix=""):
    """cd PROJECT_DIR && exec [prefix]sluice run PIPELINE --until-caught-up [--var ...]; exec:
    sluice gets SIGTERM itself when Airflow stops the task, and drains and checkpoints."""
    return (f'cd "{PROJECT_DIR}" && exec {prefix}"{BIN}" run "{pipeline(pipeline_variable)}" '
            f"--until-caught-up{variables(vars_variable)}")


def sluice_dag(dag_id, description, schedule, tags, params=None, default_pipeline=None,
               retries=2, retry_delay=300, default_args=None, doc_md=None):
    """default_pipeline: (environment variable, fallback) of Param default_pipeline.
    retries, retry_delay (seconds): the defaults of SLUICE_AIRFLOW_RETRIES and
    SLUICE_AIRFLOW_RETRY_DELAY; default_args replaces the retry settings altogether."""
    all_params = {"default_bin": setting("SLUICE_BIN", "/usr/local/bin/sluice"),
                  "default_project_dir": setting("SLUICE_PROJECT_DIR", "/opt/sluice")}
    if default_pipeline:
        all_params["default_pipeline"] = setting(*default_pipeline)
    all_params.update(params or {})
    if default_args is None:
        default_args = {
            "owner": "data-platform",
            "retries": int(setting("SLUICE_AIRFLOW_RETRIES", str(retries))),
            "retry_delay": pendulum.duration(
                seconds=int(setting("SLUICE_AIRFLOW_RETRY_DELAY", str(retry_delay)))),
        }
    return DAG(
        dag_id=dag_id,
        description=description,
        schedule=schedule,
        start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
        catchup=False,
        max_active_runs=1,
        tags=tags,
        user_defined_filters={"shell_quote": shlex.quote},
        params=all_params,
        default_args=default_args,
        doc_md=doc_md,
    )
