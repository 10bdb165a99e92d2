package pulsar

// BrokerLastSequence exposes brokerLastSequence to the tests.
var BrokerLastSequence = brokerLastSequence
