# `sluice explain PIPELINE...` (tests/integration/explain_test.py): every examples/*.toml at once
# from a scratch directory, each JSON explanation checked against the file as Python's tomllib
# reads it, the exit codes of bad files and arguments; the MySQL merge statements it prints,
# PREPAREd and EXECUTEd on the table a real run created (database explain_<pid>); and
# `sluice inspect kafka://...` after a run into a Kafka topic (explain_<pid>_<time>), checked
# against the input file and the dead-letter topic read with confluent_kafka. The parts that
# need a server SKIP (exit 77) without it, and FAIL when CI=true.
add_test(NAME explain
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/integration/explain_test.py
                 --sluice $<TARGET_FILE:sluice> --part examples,errors
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(explain PROPERTIES TIMEOUT 300 LABELS "python;integration")
add_test(NAME explain_mysql
         COMMAND ${Python3_EXECUTABLE} ${PROJECT_SOURCE_DIR}/tests/integration/explain_test.py
                 --sluice $<TARGET_FILE:sluice> --part mysql
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(explain_mysql PROPERTIES TIMEOUT 300 LABELS "python;integration;mysql"
                     SKIP_RETURN_CODE 77 RESOURCE_LOCK mariadb)
# confluent_kafka comes with the project venv.
add_test(NAME inspect_kafka
         COMMAND ${SLUICE_VENV_PYTHON} ${PROJECT_SOURCE_DIR}/tests/integration/explain_test.py
                 --sluice $<TARGET_FILE:sluice> --part kafka
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(inspect_kafka PROPERTIES TIMEOUT 300 LABELS "python;integration;kafka"
                     SKIP_RETURN_CODE 77)
