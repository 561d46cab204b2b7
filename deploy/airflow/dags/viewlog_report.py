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

import pendulum

from sluice_operator import SluiceBashOperator, run_until_caught_up, sluice_dag

with sluice_dag(
    dag_id="viewlog_report",
    description="sluice: view_log -> per-minute view reports as Parquet, once a day",
    schedule="@daily",
    tags=["sluice", "viewlog"],
    default_pipeline=("SLUICE_VIEWLOG_PIPELINE", "examples/viewlog.toml"),
    retries=1,
    retry_delay=60,
    doc_md=__doc__,
) as dag:
    SluiceBashOperator(
        task_id="report",
        bash_command=run_until_caught_up("sluice_viewlog_pipeline", "sluice_viewlog_vars"),
        execution_timeout=pendulum.duration(hours=3),
    )
