"""viewlog_report: the per-minute view reports (view_log -> Parquet), once a day.

The original project's view report job was a Spark job "configured in the Airflow DAG"
(`report_generator`, daily, one retry); this DAG runs examples/viewlog.toml as one task:

    cd $project_dir && exec sluice run PIPELINE --until-caught-up [--var NAME=VALUE]...

sluice reads what is new since the positions committed with the reports (Kafka: every
partition up to its end offsets at start; a file: to its end), writes the 1-minute windows the
watermark has closed as Parquet under OUT (network_id=N/minute_timestamp=.../) and exits 0.
Windows still open stay in the checkpointed state for the next run, so daily runs give the
reports one run over all the days would give; a retry or re-run counts nothing twice. Exit 1
(a runtime failure) fails the task and Airflow retries it; exit 2 (bad pipeline file or
variables) fails it without retries (sluice_operator.SluiceBashOperator).

Settings, read when the task runs; each is an Airflow Variable, else the environment variable
in brackets, else the default:
  sluice_bin               (SLUICE_BIN)          the sluice binary  /usr/local/bin/sluice
  sluice_project_dir       (SLUICE_PROJECT_DIR)  working directory  /opt/sluice
  sluice_viewlog_pipeline  (SLUICE_VIEWLOG_PIPELINE)
                           pipeline file, relative to the project dir   examples/viewlog.toml
  sluice_viewlog_vars      JSON object of pipeline variables passed as --var NAME=VALUE,
                           e.g. {"VIEWS": "kafka://broker:9092/view_log",
                                 "OUT": "parquet:/data/reports"}                 {}
SLUICE_AIRFLOW_RETRIES and SLUICE_AIRFLOW_RETRY_DELAY (seconds) in the scheduler's environment
set the task's retries (default 1, as the original) and the delay between them (default 60).
"""

import os
import shlex

import pendulum
from airflow import DAG

from sluice_operator import SluiceBashOperator


def _default(env_name, fallback):
    return os.environ.get(env_name, fallback)


_BIN = "{{ var.value.get('sluice_bin', params.default_bin) }}"
_DIR = "{{ var.value.get('sluice_project_dir', params.default_project_dir) }}"
_PIPELINE = "{{ var.value.get('sluice_viewlog_pipeline', params.default_pipeline) }}"
_VARS = (
    "{% for name, value in var.json.get('sluice_viewlog_vars', {}).items() %}"
    " --var {{ (name ~ '=' ~ value) | shell_quote }}{% endfor %}"
)

with DAG(
    dag_id="viewlog_report",
    description="sluice: view_log -> per-minute view reports as Parquet, once a day",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["sluice", "viewlog"],
    user_defined_filters={"shell_quote": shlex.quote},
    params={
        "default_bin": _default("SLUICE_BIN", "/usr/local/bin/sluice"),
        "default_project_dir": _default("SLUICE_PROJECT_DIR", "/opt/sluice"),
        "default_pipeline": _default("SLUICE_VIEWLOG_PIPELINE", "examples/viewlog.toml"),
    },
    default_args={
        "owner": "data-platform",
        "retries": int(_default("SLUICE_AIRFLOW_RETRIES", "1")),
        "retry_delay": pendulum.duration(seconds=int(_default("SLUICE_AIRFLOW_RETRY_DELAY", "60"))),
    },
    doc_md=__doc__,
) as dag:
    SluiceBashOperator(
        task_id="report",
        # exec: sluice gets SIGTERM itself when Airflow stops the task, and drains and
        # checkpoints before it exits.
        bash_command=f'cd "{_DIR}" && exec "{_BIN}" run "{_PIPELINE}" --until-caught-up{_VARS}',
        execution_timeout=pendulum.duration(hours=3),
    )
