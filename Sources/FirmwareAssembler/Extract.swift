import Archive
import DiskImage
import FileSystemExt4
import FileSystems
import Foundation
import PartitionTable

/// How the archive is compressed (`none`, parallel `gzip` 1-12, `zstd` 1-19).
public typealias Compression = Archive.Compression
/// The compression formats by name (none, gzip, zstd).
public typealias CompressionFormat = Archive.CompressionFormat
/// Something written with a loss, or skipped: the path and why.
public typealias ArchiveProblem = Archive.ArchiveProblem

/// Which partition: by its number, or by GPT partition name or filesystem label.
public enum PartitionSelector: Sendable, Equatable, CustomStringConvertible {
    case number(Int)
    case name(String)

    /// "3" is partition 3; anything else a GPT name or a label.
    public init(_ text: String) {
        self = Int(text).map(PartitionSelector.number) ?? .name(text)
    }

    /// As messages quote it: 3, "hassos-data".
    public var description: String {
        switch self {
        case .number(let n): return "\(n)"
        case .name(let name): return name.debugDescription
        }
    }
}

/// What `Disk.extract` did (as JSON: the C ABI's and Python's extract result, problems as text).
public struct ExtractResult: Sendable, Encodable {
    /// "disk.img partition 2 (rootfs)"
    public var partition: String
    /// "ext4", "squashfs", "erofs", "vfat"
    public var format: String
    public var members: Int
    public var files: Int
    public var hardlinks: Int
    public var contentBytes: UInt64
    /// Uncompressed tar bytes.
    public var tarBytes: UInt64
    /// Entries skipped or written with a loss; the archive is complete otherwise.
    public var problems: [ArchiveProblem]
    /// What journal replay did, for an ext3/ext4 filesystem that needed recovery (else nil).
    public var journal: JournalReport? = nil
    /// Every warning of the run, as `strict` counts them: the archive's problems, then the
    /// journal replay's (an ext3/ext4 journal's "journal: ...", a UBIFS journal's "UBIFS journal: ...").
    public var warnings: [String] = []

    enum CodingKeys: String, CodingKey {
        case partition, format, members, files, hardlinks, contentBytes = "content_bytes", tarBytes = "tar_bytes", problems, journal, warnings
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: CodingKeys.self)
        try c.encode(partition, forKey: .partition)
        try c.encode(format, forKey: .format)
        try c.encode(members, forKey: .members)
        try c.encode(files, forKey: .files)
        try c.encode(hardlinks, forKey: .hardlinks)
        try c.encode(contentBytes, forKey: .contentBytes)
        try c.encode(tarBytes, forKey: .tarBytes)
        try c.encode(problems.map(\.description), forKey: .problems)
        try c.encodeIfPresent(journal, forKey: .journal)
        try c.encode(warnings, forKey: .warnings)
    }
}

extension Disk {
    /// The bytes of one partition, chosen by number ("2"), GPT partition name, or filesystem
    /// label (`PartitionSelector(text)`). A bare filesystem image (no partition table) is partition 1.
    /// Returns the slice and its description for messages.
    public func partitionSource(_ selector: String) throws -> (source: any ByteSource, description: String) {
        try partitionSource(PartitionSelector(selector))
    }

    /// The bytes of the partition `selector` chooses, and its description for messages.
    public func partitionSource(_ selector: PartitionSelector) throws -> (source: any ByteSource, description: String) {
        let table = try table()
        if table.kind == .none {
            guard selector == .number(1) else {
                throw FWError(.notFound, "no partition table: a bare filesystem image has only partition 1 (asked for \(selector))", disk: path)
            }
            let whole = FWError.Place(disk: path, partition: "(whole image)")
            return (try source.slice(offset: 0, length: source.size, place: whole), whole.description)
        }
        let usable = table.partitions.filter { !$0.isExtended }
        var chosen: Partition?
        switch selector {
        case .number(let n):
            chosen = usable.first { $0.index == n }
            if chosen == nil, table.partitions.contains(where: { $0.index == n && $0.isExtended }) {
                throw FWError(.invalidArgument, "partition \(n) is an MBR extended partition (a container of logical partitions, no filesystem)", disk: path)
            }
        case .name(let name):
            chosen = usable.first { $0.name == name }
            if chosen == nil {
                let prober = try makeProber()
                chosen = usable.first { p in
                    guard p.withinImage, p.sectorCount > 0 else { return false }
                    return (try? prober.probe(offset: p.start, size: p.size))??.label == name  // unprobeable: not this label
                }
            }
        }
        guard let p = chosen else {
            let known = usable.map { p in "\(p.index)" + (p.name.map { " (\($0))" } ?? "") }.joined(separator: ", ")
            throw FWError(.notFound, "no partition \(selector) (by number, GPT name or filesystem label); the table has \(known)", disk: path)
        }
        if table.kind == .ubi { return try ubiVolume(p) }
        let label = "partition \(p.index)" + (p.name.map { " (\($0))" } ?? "")
        guard p.withinImage else {
            throw FWError(.corrupt, "reaches past the end of the image", disk: path, partition: label)
        }
        let place = FWError.Place(disk: path, partition: label)
        return (try source.slice(offset: p.start, length: p.size, place: place), place.description)
    }

    /// Opens the filesystem of one partition (see `partitionSource`), detected by magic; an
    /// ext3/ext4 one that needs recovery with its journal replayed unless `replayJournal` is false.
    public func openFileSystem(partition selector: String, replayJournal: Bool = true,
                               journalProgress: JournalReplayProgress? = nil) throws -> (reader: any FileSystemReader, description: String) {
        let (slice, description) = try partitionSource(selector)
        do {
            return (try openReader(slice, name: description, replayJournal: replayJournal, journalProgress: journalProgress), description)
        } catch let e as FWError {
            throw e.within(disk: path)
        }
    }

    /// Writes one partition's filesystem as a tar archive (docs/archive-format.md) through
    /// `OutputTarget`. Entries that cannot be archived (sockets, unreadable inodes) are skipped
    /// and returned in `problems` (with `strict`, they fail the job and nothing is left); errors
    /// that stop the archive throw. `request.source` is not read: this disk is the source.
    public func extract(_ request: ExtractRequest, hooks: JobHooks = JobHooks()) throws -> ExtractResult {
        let resolved = try request.validate()
        let target = try OutputTarget(request.output.output ?? "-", inputs: inputFiles, cancellation: hooks.cancellation ?? .process)
        do {
            let (reader, description) = try openFileSystem(partition: request.partition, replayJournal: !request.source.noReplay,
                                                           journalProgress: hooks.journalProgress)
            let journal = (reader as? Ext4Reader)?.journal
            var walk = TreeWalk(reader)
            let (summary, tarBytes, warnings) = try Self.archive(&walk, to: target, resolved: resolved, strict: request.strict) { summary in
                summary.problems.map(\.description) + replayWarnings(of: reader) + deviceWarnings().map(\.text)
            }
            return ExtractResult(partition: description, format: reader.formatName, members: summary.members,
                                 files: summary.files, hardlinks: summary.hardlinks, contentBytes: summary.contentBytes,
                                 tarBytes: tarBytes, problems: summary.problems, journal: journal, warnings: warnings)
        } catch {
            target.abort()
            throw placed(error)
        }
    }

    /// The archive scaffold of extract and the exports: `walk` into `Archiver` over the
    /// compressor over `target`; with `strict`, the first of `warnings(summary)` fails the job
    /// before the commit (nothing is left). Returns the summary, the uncompressed tar bytes and
    /// the warnings.
    static func archive<Walk: EntryWalk>(_ walk: inout Walk, to target: OutputTarget, resolved: ResolvedOutput, strict: Bool,
                                         warnings: (ArchiveSummary) -> [String]) throws -> (ArchiveSummary, UInt64, [String]) {
        let tar = TarWriter(sink: try resolved.compression.sink(over: target.sink, threads: resolved.threads))
        let summary = try Archiver.archive(&walk, into: tar)
        try tar.finish()
        let found = warnings(summary)
        if strict, let failure = strictFailure(found) { throw failure }
        try target.commit()
        return (summary, tar.bytesWritten, found)
    }
}
