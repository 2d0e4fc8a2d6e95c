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

/// What `Disk.extract` did.
public struct ExtractResult: Sendable {
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
}

/// Where the archive goes and how it is written.
public struct ExtractOptions: Sendable {
    /// Output path; "-" for standard output.
    public var output: String
    public var compression: Compression
    /// Compression threads.
    public var threads: Int
    /// Replay the journal of an ext3/ext4 filesystem that needs recovery, as the kernel does
    /// when it mounts it (default); false (`--no-replay`) reads the on-disk state.
    public var replayJournal: Bool
    /// Called now and then while the journal is replayed; never prints.
    public var journalProgress: JournalReplayProgress?

    public init(output: String, compression: Compression = .defaultGzip,
                threads: Int = ProcessInfo.processInfo.activeProcessorCount, replayJournal: Bool = true) {
        self.output = output
        self.compression = compression
        self.threads = threads
        self.replayJournal = replayJournal
    }
}

extension Disk {
    /// The bytes of one partition, chosen by number ("2"), GPT partition name, or filesystem
    /// label. A bare filesystem image (no partition table) is partition 1.
    /// Returns the slice and its description for messages.
    public func partitionSource(_ selector: String) throws -> (source: any ByteSource, description: String) {
        let table = try table()
        if table.kind == .none {
            guard selector == "1" else {
                throw FWError(.notFound, "no partition table: a bare filesystem image has only partition 1 (asked for \(selector.debugDescription))", disk: path)
            }
            let whole = FWError.Place(disk: path, partition: "(whole image)")
            return (try source.slice(offset: 0, length: source.size, place: whole), whole.description)
        }
        let usable = table.partitions.filter { !$0.isExtended }
        var chosen: Partition?
        if let n = Int(selector) {
            chosen = usable.first { $0.index == n }
        } else {
            chosen = usable.first { $0.name == selector }
            if chosen == nil {
                let prober = try makeProber()
                chosen = usable.first { p in
                    guard p.withinImage, p.sectorCount > 0 else { return false }
                    return (try? prober.probe(offset: p.start, size: p.size))??.label == selector
                }
            }
        }
        if chosen == nil, let n = Int(selector), table.partitions.contains(where: { $0.index == n && $0.isExtended }) {
            throw FWError(.invalidArgument, "partition \(n) is an MBR extended partition (a container of logical partitions, no filesystem)", disk: path)
        }
        guard let p = chosen else {
            let known = usable.map { p in "\(p.index)" + (p.name.map { " (\($0))" } ?? "") }.joined(separator: ", ")
            throw FWError(.notFound, "no partition \(selector.debugDescription) (by number, GPT name or filesystem label); the table has \(known)", disk: path)
        }
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
            return (try FileSystemFormat.open(slice, name: description, replayJournal: replayJournal,
                                              journalProgress: journalProgress), description)
        } catch let e as FWError {
            throw e.within(disk: path)
        }
    }

    /// Writes one partition's filesystem as a tar archive (docs/archive-format.md): to a
    /// temporary file beside `options.output`, renamed over it on success and removed on failure.
    /// Entries that cannot be archived (sockets, unreadable inodes) are skipped and returned in
    /// `problems`; errors that stop the archive throw.
    public func extract(partition selector: String, options: ExtractOptions) throws -> ExtractResult {
        let (reader, description) = try openFileSystem(partition: selector, replayJournal: options.replayJournal,
                                                       journalProgress: options.journalProgress)
        let output = try OutputFile(path: options.output)
        do {
            let tar = TarWriter(sink: try options.compression.sink(over: output.sink, threads: options.threads))
            let report = try Archiver.archive(reader, into: tar)
            try tar.finish()
            try output.commit()
            return ExtractResult(partition: description, format: reader.formatName, members: report.members,
                                 files: report.files, hardlinks: report.hardlinks, contentBytes: report.contentBytes,
                                 tarBytes: tar.bytesWritten, problems: report.problems,
                                 journal: (reader as? Ext4Reader)?.journal.map(JournalReport.init))
        } catch {
            output.abort()
            if let e = error as? FWError { throw e.within(disk: path) }
            throw error
        }
    }
}
