"""recruitment_incremental: the daily 07:00 batch of the recruitment pipeline, as one task.

The task runs `sluice run PIPELINE --until-caught-up`: sluice reads what is new since the
positions committed in the sink, writes it in checkpoints and exits 0. The sink's positions
make a retry or a re-run harmless (nothing is counted twice). Exit 1 (a runtime failure) fails
the task and Airflow retries it; exit 2 (bad pipeline file or arguments) fails it without
retries (sluice_operator.SluiceBashOperator).

Settings, read when the task runs; each is an Airflow Variable, else the environment variable
in brackets, else the default:
  sluice_bin                   (SLUICE_BIN)          the sluice binary  /usr/local/bin/sluice
  sluice_project_dir           (SLUICE_PROJECT_DIR)  working directory  /opt/sluice
  sluice_recruitment_pipeline  (SLUICE_RECRUITMENT_PIPELINE)
                               pipeline file, relative to the project dir  examples/recruitment.toml
  sluice_recruitment_vars      JSON object of pipeline variables passed as --var NAME=VALUE,
                               e.g. {"TRACKING": "kafka://127.0.0.1:9092/tracking",
                                     "SINK": "mysql://sluice@127.0.0.1:3306/sluice"}   {}
The pipeline also reads its variables (TRACKING, JOBS, SINK, DLQ, ...) from the worker's
environment, and the MySQL password from SLUICE_MYSQL_PASSWORD_FILE (or SLUICE_MYSQL_PASSWORD)
there: credentials never go into Variables or onto the command line.
SLUICE_AIRFLOW_RETRIES and SLUICE_AIRFLOW_RETRY_DELAY (seconds) in the scheduler's environment
set the task's retries (default 2) and the delay between them (default 300).
"""

import os
import shlex

import pendulum
from airflow import DAG

from sluice_operator import SluiceBashOperator


def _default(env_name, fallback):
    return os.environ.get(env_name, fallback)


# Rendered by Jinja when the task runs (Variables are not read at parse time).
_BIN = "{{ var.value.get('sluice_bin', params.default_bin) }}"
_DIR = "{{ var.value.get('sluice_project_dir', params.default_project_dir) }}"
_PIPELINE = "{{ var.value.get('sluice_recruitment_pipeline', params.default_pipeline) }}"
_VARS = (
    "{% for name, value in var.json.get('sluice_recruitment_vars', {}).items() %}"
    " --var {{ (name ~ '=' ~ value) | shell_quote }}{% endfor %}"
)

with DAG(
    dag_id="recruitment_incremental",
    description="sluice: new tracking events -> hourly job metrics (events table), once a day",
    schedule="0 7 * * *",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["sluice", "recruitment"],
    user_defined_filters={"shell_quote": shlex.quote},
    params={
        "default_bin": _default("SLUICE_BIN", "/usr/local/bin/sluice"),
        "default_project_dir": _default("SLUICE_PROJECT_DIR", "/opt/sluice"),
        "default_pipeline": _default("SLUICE_RECRUITMENT_PIPELINE", "examples/recruitment.toml"),
    },
    default_args={
        "owner": "data-platform",
        "retries": int(_default("SLUICE_AIRFLOW_RETRIES", "2")),
        "retry_delay": pendulum.duration(seconds=int(_default("SLUICE_AIRFLOW_RETRY_DELAY", "300"))),
    },
    doc_md=__doc__,
) as dag:
    SluiceBashOperator(
        task_id="run_until_caught_up",
        # exec: sluice gets SIGTERM itself when Airflow stops the task, and drains and
        # checkpoints before it exits.
        bash_command=(
            f'cd "{_DIR}" && exec "{_BIN}" run "{_PIPELINE}" --until-caught-up{_VARS}'
        ),
        execution_timeout=pendulum.duration(hours=3),
    )
