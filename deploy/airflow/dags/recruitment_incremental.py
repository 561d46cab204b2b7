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

import pendulum

from sluice_operator import SluiceBashOperator, run_until_caught_up, sluice_dag

with sluice_dag(
    dag_id="recruitment_incremental",
    description="sluice: new tracking events -> hourly job metrics (events table), once a day",
    schedule="0 7 * * *",
    tags=["sluice", "recruitment"],
    default_pipeline=("SLUICE_RECRUITMENT_PIPELINE", "examples/recruitment.toml"),
    doc_md=__doc__,
) as dag:
    SluiceBashOperator(
        task_id="run_until_caught_up",
        bash_command=run_until_caught_up("sluice_recruitment_pipeline", "sluice_recruitment_vars"),
        execution_timeout=pendulum.duration(hours=3),
    )
