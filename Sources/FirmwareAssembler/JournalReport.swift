import FileSystemExt4

/// Progress of a journal replay, for a progress line: the partition ("disk.img partition 8
/// (hassos-data)"), journal blocks replayed so far, and in all.
public typealias JournalReplayProgress = @Sendable (_ partition: String, _ done: Int, _ total: Int) -> Void

/// What journal replay did to one ext3/ext4 filesystem that needed recovery (a snapshot of a
/// running device): the `journal` object of the extract and assemble reports (docs/readers-ext4.md).
public struct JournalReport: Sendable, Codable, Equatable {
    /// True when journalled blocks were laid over the filesystem (false: clean journal, replay
    /// turned off with `--no-replay`, or a journal that could not be used; see `warnings`).
    public var replayed: Bool
    /// Committed transactions replayed.
    public var transactions: Int
    /// Journalled block writes replayed.
    public var blocks: Int
    /// Journalled block writes skipped because a later revoke record cancelled them.
    public var revoked: Int
    /// Inodes on the orphan list after replay (deleted or truncated in the view, as on mount).
    public var orphans: Int
    /// Where replay stopped early or what it left out, as the kernel would log it.
    public var warnings: [String]

    init(_ r: JournalReplay) {
        replayed = r.replayed
        transactions = r.transactions
        blocks = r.blocks
        revoked = r.revoked
        orphans = r.orphans
        warnings = r.warnings
    }
}

/// The journal of one partition, in the assemble report's `journals` list.
public struct PartitionJournal: Sendable, Codable, Equatable {
    /// Linux partition number.
    public var index: Int
    /// "disk.img partition 8 (hassos-data)"
    public var partition: String
    public var journal: JournalReport
}
