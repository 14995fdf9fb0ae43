// Package sqlscripts embeds the SQL files of stepevents that are not
// migrations: the pgmq-compatible schema installed when the pgmq extension is
// unavailable, and operator scripts.
//
// The directory is named sql/ to sit beside queries/ and migrations/; the
// package is named sqlscripts so it never shadows database/sql.
package sqlscripts

import _ "embed"

// PgmqCompat is stepevents' own pgmq-compatible schema, written from the
// public pgmq SQL contract (never copied from pgmq's source).
//
//go:embed pgmq/pgmq_compat.sql
var PgmqCompat string

// PgmqCompatMarker is the comment the compatible schema puts on schema pgmq,
// so stepevents can tell it installed it (and may drop it on migrate down).
const PgmqCompatMarker = "stepevents pgmq-compatible schema"
