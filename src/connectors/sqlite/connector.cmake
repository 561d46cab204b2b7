# The sqlite connector's library (included by the top-level CMakeLists.txt): its sources
# are this folder's *.cc; what it links, below. Registered in src/connectors/builtin.cc.
sluice_connector(sqlite sluice_connector_table PkgConfig::SQLITE3)
