import Archive
import Assembly
import DiskImage
import DockerState
import FileSystems
import Foundation
import MountPlan

@_exported import struct MountPlan.RehostChange
@_exported import enum Archive.HardlinkMode

/// Options of `Disk.assemble`.
public struct AssembleOptions: Sendable {
    /// Output path, "-" for standard output; nil: `<image name without extension>.rootfs.tar.gz`
    /// in the current directory.
    public var output: String?
    /// The JSON report's path; nil: `<output>.report.json` (no report file for standard output).
    public var reportPath: String?
    public var compression: Compression
    public var threads: Int
    /// Drop device nodes and list them in the report (fw2tar's behaviour).
    public var noDevices: Bool
    /// Planning options (`--root`).
    public var plan: PlanOptions
    /// `--rehost`: mask the folded mount units and comment out the folded fstab lines, so the
    /// rehosted system does not try to mount partitions that are not there.
    public var rehost: Bool = false
    /// `--hardlinks`: link members (the default) or full copies for every later path of a
    /// hardlink (binds stay link members; docs/rehosting.md).
    public var hardlinks: HardlinkMode = .link
    /// `--format`: the archive (default) or an ext4 image (`ext4`'s options).
    public var format: AssembleFormat = .tar
    public var ext4 = Ext4ImageOptions()
    /// Called now and then with progress; never prints.
    public var progress: (@Sendable (AssembleProgress) -> Void)?
    /// Called now and then while a journal is replayed (before the archive starts); never prints.
    public var journalProgress: JournalReplayProgress?

    public init(output: String? = nil, reportPath: String? = nil, compression: Compression = .defaultGzip,
                threads: Int = ProcessInfo.processInfo.activeProcessorCount, noDevices: Bool = false,
                plan: PlanOptions = PlanOptions(), progress: (@Sendable (AssembleProgress) -> Void)? = nil) {
        self.output = output
        self.reportPath = reportPath
        self.compression = compression
        self.threads = threads
        self.noDevices = noDevices
        self.plan = plan
        self.progress = progress
    }
}

/// Progress of an assembly: entries and content bytes written so far, of a planned total.
public struct AssembleProgress: Sendable {
    public var entries: Int
    public var contentBytes: UInt64
    /// Bytes of the mounted partitions (an upper bound of what will be read).
    public var plannedBytes: UInt64
    public var currentPath: String
}

/// What `assemble` did: the sidecar `<output>.report.json`.
public struct AssembleReport: Sendable, Codable {
    public struct Origin: Sendable, Codable, Equatable {
        public var origin: String
        public var entries: Int
        public var bytes: UInt64
    }

    public var tool: String
    public var version: String
    public var image: String
    public var output: String
    public var compression: String
    public var plan: Plan
    /// Entries and content bytes per mounted filesystem ("partition 8").
    public var partitions: [Origin]
    public var members: Int
    public var files: Int
    public var hardlinks: Int
    public var contentBytes: UInt64
    public var tarBytes: UInt64
    /// Device nodes left out with `--no-devices`.
    public var droppedDevices: [String]
    /// Sockets (not representable in tar).
    public var skippedSockets: [String]
    public var warnings: [String]
    /// Entries that could not be read, with their paths.
    public var readErrors: [String]
    /// The Docker data-roots in the archive (docs/docker.md), nil when there are none.
    public var docker: DockerReport? = nil
    /// With `--rehost`: each unit masked and fstab line commented out.
    public var rehost: [RehostChange]? = nil
    /// With `--hardlinks copy` only: "copy", hardlink paths written as full files, and the content
    /// bytes they stored again.
    public var hardlinkMode: String? = nil
    public var copiedHardlinks: Int? = nil
    public var copiedBytes: UInt64? = nil
    /// With `--format ext4` only: "ext4" and the image's geometry.
    public var format: String? = nil
    public var ext4: Ext4ImageReport? = nil
    /// The ext3/ext4 partitions that needed recovery and what journal replay did to each (absent
    /// when none needed it).
    public var journals: [PartitionJournal]? = nil

    enum CodingKeys: String, CodingKey {
        case tool, version, image, output, compression, plan, partitions, members, files, hardlinks
        case contentBytes = "content_bytes", tarBytes = "tar_bytes", droppedDevices = "dropped_devices"
        case skippedSockets = "skipped_sockets", warnings, readErrors = "read_errors", docker, rehost, journals
        case hardlinkMode = "hardlink_mode", copiedHardlinks = "copied_hardlinks", copiedBytes = "copied_bytes"
        case format, ext4
    }

    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}

/// The tool's version, written into reports.
public let fwassembleVersion = "0.1.0"

extension RehostWalk: ArchivableWalk {}

extension AssembleReport {
    /// The partitions whose journal needed recovery (`journals`, absent when none did), and
    /// their replay warnings among the report's warnings.
    mutating func addJournals(of booted: BootedNamespace) {
        let journals = booted.partitions.journals.sorted { $0.key < $1.key }.map { index, j in
            PartitionJournal(index: index, partition: j.description, journal: JournalReport(j.replay))
        }
        guard !journals.isEmpty else { return }
        self.journals = journals
        warnings += journals.flatMap { j in j.journal.warnings.map { "\(j.partition): journal: \($0)" } }
    }
}

extension Disk {
    /// The default output name: the image's file name without its extensions, plus
    /// `.rootfs.tar.gz`, in the current directory.
    public static func defaultOutputName(for image: String) -> String {
        let base = image.split(separator: "/").last.map(String.init) ?? image
        let stem = base.split(separator: ".", omittingEmptySubsequences: false).first.map(String.init) ?? base
        return (stem.isEmpty ? base : stem) + ".rootfs.tar.gz"
    }

    /// Writes the booted namespace as one archive (docs/archive-format.md), streaming from the
    /// disk, to a temporary file renamed over the output only on success. Returns (and writes
    /// beside the output) the report.
    public func assemble(options: AssembleOptions = AssembleOptions()) throws -> AssembleReport {
        if options.format == .ext4 { return try writeExt4Image(options: options) }
        return try writeAssembly(to: .path(options.output ?? Self.defaultOutputName(for: path)), options: options)
    }

    /// `assemble` to any destination (Destination.swift).
    func writeAssembly(to destination: AssembleDestination, options: AssembleOptions) throws -> AssembleReport {
        let booted = try BootedNamespace(disk: self, options: options.plan, journalProgress: options.journalProgress)
        let plan = booted.plan
        let outputPath = destination.description
        let output = try destination.open()
        var report = AssembleReport(tool: "fwassemble", version: fwassembleVersion, image: path, output: outputPath,
                                    compression: options.compression.description, plan: plan, partitions: [], members: 0,
                                    files: 0, hardlinks: 0, contentBytes: 0, tarBytes: 0, droppedDevices: [],
                                    skippedSockets: [], warnings: plan.warnings, readErrors: [])
        let planned = plan.mounts.reduce(UInt64(0)) { sum, m in
            sum + (m.partition.flatMap { i in booted.partitions.partitions.first { $0.index == i }?.size } ?? 0)
        }
        do {
            let tar = TarWriter(sink: try options.compression.sink(over: output.archiveSink, threads: options.threads))
            var tally = AssemblyTally(booted: booted, progress: options.progress, plannedBytes: planned)
            var contentBytes: UInt64 = 0
            let written = { (entry: WalkEntry, kind: TarWriter.MemberKind) in
                if kind == .file { contentBytes += entry.metadata.size }
                tally.count(entry, contentBytes: contentBytes)
            }
            let summary: ArchiveSummary
            if options.rehost {
                var walk = RehostWalk(booted.walk(), plan: plan)
                summary = try Archiver.archive(&walk, into: tar, dropDevices: options.noDevices,
                                               hardlinks: options.hardlinks, written: written)
                report.rehost = walk.changes
            } else {
                var walk = booted.walk()
                summary = try Archiver.archive(&walk, into: tar, dropDevices: options.noDevices,
                                               hardlinks: options.hardlinks, written: written)
            }
            try tar.finish()
            report.members = summary.members
            report.files = summary.files
            report.hardlinks = summary.hardlinks
            report.contentBytes = summary.contentBytes
            report.skippedSockets = summary.skippedSockets
            report.droppedDevices = summary.droppedDevices
            report.readErrors = summary.readErrors.map(\.description)
            report.tarBytes = tar.bytesWritten
            if options.hardlinks == .copy {
                report.hardlinkMode = options.hardlinks.rawValue
                report.copiedHardlinks = summary.copiedHardlinks
                report.copiedBytes = summary.copiedBytes
            }
            report.partitions = tally.partitions
            report.warnings += booted.namespace.problems.map(\.description)
            report.warnings += summary.walkProblems.map(\.placedDescription)
            report.addJournals(of: booted)
            let docker = DataRootLocator.report(for: booted.namespace, binds: booted.binds)
            if !docker.dataRoots.isEmpty { report.docker = docker }
            try output.commit()
        } catch {
            output.abort()
            if let e = error as? FWError { throw e.within(disk: path) }
            throw error
        }
        if let reportFile = destination.reportPath(explicit: options.reportPath) {
            do {
                try Data((try report.json() + "\n").utf8).write(to: URL(fileURLWithPath: reportFile), options: .atomic)
            } catch {
                throw FWError(.io, "cannot write the report \(reportFile): \(error.localizedDescription)", cause: error)
            }
        }
        return report
    }
}
