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

import os
import shlex

import pendulum
from airflow import DAG
from airflow.models.param import Param

from sluice_operator import SluiceBashOperator


def _default(env_name, fallback):
    return os.environ.get(env_name, fallback)


# Rendered by Jinja when the task runs (Variables are not read at parse time).
_BIN = "{{ var.value.get('sluice_bin', params.default_bin) }}"
_DIR = "{{ var.value.get('sluice_project_dir', params.default_project_dir) }}"
_PIPELINE = "{{ var.value.get('sluice_users_ingest_pipeline', params.default_pipeline) }}"
_VARS = (
    "{% for name, value in var.json.get('sluice_users_ingest_vars', {}).items() %}"
    " --var {{ (name ~ '=' ~ value) | shell_quote }}{% endfor %}"
)

with DAG(
    dag_id="push_data_to_broker",
    description="sluice: user profiles from the API -> Kafka topic users_profile, once a day",
    schedule="@daily",
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,
    tags=["sluice", "users", "producer"],
    user_defined_filters={"shell_quote": shlex.quote},
    params={
        "duration": Param(180, type="integer", minimum=1),
        "default_bin": _default("SLUICE_BIN", "/usr/local/bin/sluice"),
        "default_project_dir": _default("SLUICE_PROJECT_DIR", "/opt/sluice"),
        "default_pipeline": _default("SLUICE_USERS_INGEST_PIPELINE", "examples/users-ingest.toml"),
    },
    default_args={
        "owner": "data-platform",
        "retries": int(_default("SLUICE_AIRFLOW_RETRIES", "2")),
        "retry_delay": pendulum.duration(seconds=int(_default("SLUICE_AIRFLOW_RETRY_DELAY", "300"))),
    },
    doc_md=__doc__,
) as dag:
    SluiceBashOperator(
        task_id="push_profiles",
        # timeout stops sluice after `duration` seconds with SIGINT (it drains, commits and exits
        # 0; --preserve-status keeps sluice's own status) and kills it 60 s later if it hangs.
        # --foreground: the signal goes to sluice only; without it timeout signals its whole
        # process group too, sluice gets SIGINT twice and takes the second as "exit at once".
        # exec: sluice gets SIGTERM itself when Airflow stops the task.
        bash_command=(
            f'cd "{_DIR}" && exec timeout --foreground --preserve-status --signal=INT '
            "--kill-after=60 "
            "{{ params.duration | int }} "
            f'"{_BIN}" run "{_PIPELINE}" --until-caught-up{_VARS}'
        ),
        execution_timeout=pendulum.duration(hours=1),
    )
