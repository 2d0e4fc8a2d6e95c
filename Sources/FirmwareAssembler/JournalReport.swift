import FileSystemBtrfs
import FileSystemExt4
import FileSystemUBIFS
import FileSystems

@_exported import struct FileSystemExt4.JournalReplay

/// Progress of a journal replay, for a progress line: the partition ("disk.img partition 8
/// (hassos-data)"), journal blocks replayed so far, and in all.
public typealias JournalReplayProgress = @Sendable (_ partition: String, _ done: Int, _ total: Int) -> Void

/// What journal replay did to one ext3/ext4 filesystem that needed recovery (a snapshot of a
/// running device): the `journal` object of the extract and assemble reports (docs/readers-ext4.md):
/// `replayed`, `transactions`, `blocks`, `revoked`, `orphans`, `warnings`. The reader's own value.
public typealias JournalReport = JournalReplay

/// The journal of one partition, in the assemble report's `journals` list.
public struct PartitionJournal: Sendable, Codable, Equatable {
    /// Linux partition number.
    public var index: Int
    /// "disk.img partition 8 (hassos-data)"
    public var partition: String
    public var journal: JournalReport
}

/// The journal replay warnings of any reader, as every job words them: an ext3/ext4 journal's
/// ("journal: ...") and a UBIFS journal's ("UBIFS journal: ..."), and a btrfs log tree that was
/// not replayed ("btrfs log tree: ..."); empty for other formats.
func replayWarnings(of reader: any FileSystemReader) -> [String] {
    if let ext4 = reader as? Ext4Reader { return ext4.journal?.warnings.map { "journal: \($0)" } ?? [] }
    if let ubifs = reader as? UBIFSReader { return ubifs.journal.warnings.map { "UBIFS journal: \($0)" } }
    if let btrfs = reader as? BtrfsReader { return btrfs.logReplay?.warnings.map { "btrfs log tree: \($0)" } ?? [] }
    return []
}
