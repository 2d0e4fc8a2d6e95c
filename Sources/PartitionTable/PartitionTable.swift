// PartitionTable module
