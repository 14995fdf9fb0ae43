package sqlscripts

import _ "embed"

// Roles is the operator script that creates the least-privilege group roles
// stepevents_producer, stepevents_consumer and stepevents_listener, grants
// each exactly what its job needs in the current database, and defines
// stepevents.grant_producer, grant_consumer and revoke_queue_access for
// per-namespace queue grants. It is idempotent; run it as the owner of the
// stepevents schema after every migration and after applying a template with
// a new namespace. SECURITY.md explains what the roles do and do not protect.
//
//go:embed roles.sql
var Roles string
