package postgres

// CreateDatabase lets the examples create their databases as the tests do.
var CreateDatabase = createDatabase
