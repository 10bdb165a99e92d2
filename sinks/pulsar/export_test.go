package pulsar

// BrokerLastSequences and PartitionOf expose brokerLastSequences and
// partitionOf to the tests.
var (
	BrokerLastSequences = brokerLastSequences
	PartitionOf         = partitionOf
)
