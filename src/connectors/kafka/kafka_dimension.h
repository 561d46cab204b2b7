#pragma once

#include <memory>

#include "config/option_spec.h"
#include "core/status.h"
#include "operators/dimension.h"

namespace sluice {

/// The options of a kafka:// dimension, besides `refresh` (CheckKafkaDimensionOptions and the poller read them).
const OptionTable& KafkaDimensionOptions();

class DimensionPoller;

/// Follows a dimension through a change-data-capture topic (kafka://HOST:PORT/TOPIC).
///
/// `format` (a [dimension.NAME] option) says what a message holds:
/// - "jdbc" (default): one row as a JSON object, as the Kafka Connect JDBC source writes it
///   through the JsonConverter: flat (schemas.enable=false) or inside its schema envelope
///   (`{"schema":…, "payload":{…}}`, an object with exactly these two members; the converter's
///   default); every message upserts its row.
/// - "debezium": a Debezium change event, `{"before":…, "after":…, "op":"c|u|d|r"}`, bare or
///   inside the schema envelope (`{"schema":…, "payload":{…}}`); c, u and r upsert `after`,
///   d deletes the key of `before`; tombstones (empty messages) are skipped.
/// - "avro" (with `schema_registry`): either of them in the Confluent Avro wire format; a writer
///   schema with the fields before, after and op is a Debezium envelope, any other a row. A
///   registry that does not answer holds the message back (retried), it is not skipped.
/// - "protobuf" (with `schema_registry`): the same in the Confluent Protobuf wire format; the
///   message type the indexes name is a Debezium envelope when it has the fields before, after
///   (messages of the row type) and op, any other a row (decided once per schema id).
///
/// The poller reads every partition from the beginning; CatchUp() reads up to the end offsets
/// seen when it starts, so the pipeline's first lookups see the whole table. A message that
/// does not decode, is in neither shape, or has no key, is skipped and counted as a refresh
/// error (logged with its reason, the first and then every 1000th).
class KafkaDimensionPoller;
Result<std::unique_ptr<DimensionPoller>> MakeKafkaDimensionPoller(std::shared_ptr<Dimension> dim);

/// Reads the options of a Kafka dimension (for LoadDimension): fails on an unknown format.
Status CheckKafkaDimensionOptions(const DimensionConfig& config);

}  // namespace sluice
