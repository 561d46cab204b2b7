"""push_data_to_broker: user profiles from the API into Kafka, once a day (the users ingest).

The original project's `user_automation` DAG pushed randomuser.me profiles to Kafka daily for a
few minutes per run; this DAG runs the first half of the users pipeline the same way, as one
task:

    cd $project_dir && exec timeout --foreground --signal=INT DURATION \
        sluice run PIPELINE --until-caught-up \
        [--var NAME=VALUE]...

sluice requests the API page by page and writes each page's profiles to the topic in one Kafka
transaction with the page cursor, so every profile is in the topic once, across retries and
runs: each run starts at the first page no earlier run committed. A run ends with exit 0 when
it has caught up (the API answered an empty page, or COUNT profiles are in the topic: COUNT is
a total over all runs, not per run) or when `duration` seconds have passed (SIGINT: sluice
drains, commits and exits 0; an API that never runs dry, like randomuser.me or `sluice
fake-api`, ends there, as the original's 3-minute loop did). Exit 1 (a runtime failure: Kafka
gone, a commit that fails) fails the task and Airflow retries it; exit 2 (bad pipeline file or
variables) fails it without retries (sluice_operator.SluiceBashOperator).

Settings, read when the task runs; each is an Airflow Variable, else the environment variable
in brackets, else the default:
  sluice_bin                     (SLUICE_BIN)          the sluice binary  /usr/local/bin/sluice
  sluice_project_dir             (SLUICE_PROJECT_DIR)  working directory  /opt/sluice
  sluice_users_ingest_pipeline   (SLUICE_USERS_INGEST_PIPELINE)
                                 pipeline file, relative to the project dir
                                                                 examples/users-ingest.toml
  sluice_users_ingest_vars       JSON object of pipeline variables passed as --var NAME=VALUE,
                                 e.g. {"API": "https://randomuser.me/api/",
                                       "PROFILES": "kafka://broker:9092/users_profile"}   {}
Param `duration` (seconds, default 180, per run: `airflow dags trigger -c '{"duration": 60}'`).
SLUICE_AIRFLOW_RETRIES and SLUICE_AIRFLOW_RETRY_DELAY (seconds) in the scheduler's environment
set the task's retries (default 2) and the delay between them (default 300).
"""

import pendulum
from airflow.models.param import Param

from sluice_operator import SluiceBashOperator, run_until_caught_up, sluice_dag

with sluice_dag(
    dag_id="push_data_to_broker",
    description="sluice: user profiles from the API -> Kafka topic users_profile, once a day",
    schedule="@daily",
    tags=["sluice", "users", "producer"],
    params={"duration": Param(180, type="integer", minimum=1)},
    default_pipeline=("SLUICE_USERS_INGEST_PIPELINE", "examples/users-ingest.toml"),
    doc_md=__doc__,
) as dag:
    SluiceBashOperator(
        task_id="push_profiles",
        # timeout stops sluice after `duration` seconds with SIGINT (it drains, commits and exits
        # 0; --preserve-status keeps sluice's own status) and kills it 60 s later if it hangs.
        # --foreground: the signal goes to sluice only; without it timeout signals its whole
        # process group too, sluice gets SIGINT twice and takes the second as "exit at once".
        bash_command=run_until_caught_up(
            "sluice_users_ingest_pipeline", "sluice_users_ingest_vars",
            prefix="timeout --foreground --preserve-status --signal=INT --kill-after=60 "
                   "{{ params.duration | int }} "),
        execution_timeout=pendulum.duration(hours=1),
    )
