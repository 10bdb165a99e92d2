package postgres

// QueryRaw is the dialect's QueryRaw, for the tests of its row decoder.
var QueryRaw = queryRaw
