import Archive
import Assembly
import DiskImage
import FileSystemFAT
import FileSystems
import Foundation
import MountPlan

@_exported import struct Assembly.RehostChange

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
    /// Called now and then with progress; never prints.
    public var progress: (@Sendable (AssembleProgress) -> Void)?

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

    enum CodingKeys: String, CodingKey {
        case tool, version, image, output, compression, plan, partitions, members, files, hardlinks
        case contentBytes = "content_bytes", tarBytes = "tar_bytes", droppedDevices = "dropped_devices"
        case skippedSockets = "skipped_sockets", warnings, readErrors = "read_errors", docker, rehost
    }

    public func json() throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(self), as: UTF8.self)
    }
}

/// The tool's version, written into reports.
public let fwassembleVersion = "0.1.0"

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
        try writeAssembly(to: .path(options.output ?? Self.defaultOutputName(for: path)), options: options)
    }

    /// `assemble` to any destination (Destination.swift).
    func writeAssembly(to destination: AssembleDestination, options: AssembleOptions) throws -> AssembleReport {
        let partitions = try PartitionFileSystems(disk: self)
        var plan = try self.plan(using: partitions, options: options.plan)
        // FAT partitions get the uid=/gid=/umask= options they are mounted with.
        for m in plan.mounts where m.kind == .partition && m.fstype == "vfat" {
            guard let index = m.partition else { continue }
            if let fat = try? FATMountOptions.parse(m.options) { partitions.fatOptions[index] = fat }
        }
        let namespace: Namespace
        do {
            namespace = try Namespace(plan: plan, open: { try partitions.fileSystem(partition: $0) },
                                  openAt: { try partitions.fileSystem(partition: $0, offset: $1) })
        } catch let e as FWError {
            throw e.within(disk: path)
        }
        let outputPath = destination.description
        let output = try destination.open()
        var report = AssembleReport(tool: "fwassemble", version: fwassembleVersion, image: path, output: outputPath,
                                    compression: options.compression.description, plan: plan, partitions: [], members: 0,
                                    files: 0, hardlinks: 0, contentBytes: 0, tarBytes: 0, droppedDevices: [],
                                    skippedSockets: [], warnings: plan.warnings, readErrors: [])
        let planned = plan.mounts.reduce(UInt64(0)) { sum, m in
            sum + (m.partition.flatMap { i in partitions.partitions.first { $0.index == i }?.size } ?? 0)
        }
        do {
            let tar = TarWriter(sink: try options.compression.sink(over: output.archiveSink, threads: options.threads))
            var origins: [String: AssembleReport.Origin] = [:]
            var reportedTarProblems = 0
            var lastProgress = Date.distantPast
            var plainWalk = namespace.entries()
            var rehostWalk = options.rehost ? RehostWalk(namespace.entries(), plan: plan) : nil
            while let entry = rehostWalk != nil ? rehostWalk!.next() : plainWalk.next() {
                let m = entry.metadata
                if m.type == .socket {
                    report.skippedSockets.append(entry.displayPath)
                    continue
                }
                if options.noDevices, m.type == .characterDevice || m.type == .blockDevice {
                    report.droppedDevices.append(entry.displayPath)
                    continue
                }
                let tarEntry: TarEntry
                do {
                    tarEntry = try TarEntry(path: entry.path, metadata: m)
                } catch {
                    report.readErrors.append("\(entry.displayPath): \(FWError(error).message)")
                    continue
                }
                switch try tar.appendMember(tarEntry, inode: m.inode, reader: entry.reader, hardlinkTarget: entry.hardlinkTarget) {
                case .hardlink: report.hardlinks += 1
                case .file:
                    report.files += 1
                    report.contentBytes += m.size
                case .other: break
                }
                report.members += 1
                var o = origins[entry.origin] ?? AssembleReport.Origin(origin: entry.origin, entries: 0, bytes: 0)
                o.entries += 1
                if entry.hardlinkTarget == nil, m.type == .regular { o.bytes += m.size }
                origins[entry.origin] = o
                for p in tar.problems.dropFirst(reportedTarProblems) { report.readErrors.append(p.description) }
                reportedTarProblems = tar.problems.count
                if let progress = options.progress, Date().timeIntervalSince(lastProgress) > 0.2 {
                    lastProgress = Date()
                    progress(AssembleProgress(entries: report.members, contentBytes: report.contentBytes,
                                              plannedBytes: planned, currentPath: entry.displayPath))
                }
            }
            try tar.finish()
            report.tarBytes = tar.bytesWritten
            report.partitions = origins.values.sorted { $0.origin < $1.origin }
            if let rehostWalk { report.rehost = rehostWalk.changes }
            report.warnings += namespace.problems.map(\.description)
            plan.warnings = report.warnings
            let docker = Self.dockerReport(namespace: namespace, plan: plan)
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
