import Archive
import DiskImage
import DiskFormats
import Ext4Image
import FileSystemTar
import FileSystems
import Foundation
import MountPlan

/// What `assemble` writes: the archive (the default), an ext4 filesystem image, or that image
/// in a qcow2 container (through qemu-img).
public enum AssembleFormat: String, Sendable, CaseIterable {
    case tar, ext4, qcow2
}

/// With `--format ext4`: what the image is.
public struct Ext4ImageReport: Sendable, Codable, Equatable {
    public var blocks: UInt64
    public var blockSize: UInt64
    /// Inodes in use in the finished image (the reserved ones, lost+found and the journal
    /// included, as `df -i` counts them).
    public var inodes: UInt32
    /// The image's inode capacity (`--inodes`, or penguin's formula, rounded up to whole block
    /// groups as mke2fs does).
    public var inodesTotal: UInt32? = nil
    public var uuid: String
    /// The size penguin's tar of the same content would have, the base of the sizing formula.
    public var estimatedTarBytes: UInt64
    public var paddingBytes: UInt64
    /// "raw", or "qcow2 (qemu-img)".
    public var container: String
    public var addedTars: [String]
    public var addedMembers: Int
    /// `--add-tar` members not written (unsafe paths, below a symlink, dangling hardlinks, owners
    /// beyond 32 bits: each reason a warning naming the first paths).
    public var skippedMembers: Int? = nil
    /// Paths written as a copy of their file because it had 65,000 links already (ext4's limit).
    public var linkLimitCopies: Int? = nil

    enum CodingKeys: String, CodingKey {
        case blocks, blockSize = "block_size", inodes, uuid, estimatedTarBytes = "estimated_tar_bytes"
        case paddingBytes = "padding_bytes", container, addedTars = "added_tars", addedMembers = "added_members"
        case inodesTotal = "inodes_total", skippedMembers = "skipped_members", linkLimitCopies = "link_limit_copies"
    }
}

extension Disk {
    /// A filesystem UUID derived from the disk: two FNV-1a hashes of its size and first MiB,
    /// made an RFC 4122 version-4 UUID; the hash seed is the next 16 bytes.
    func derivedIdentity() throws -> (uuid: [UInt8], seed: [UInt8]) {
        // The virtual disk's first MiB and size: for a raw image, the file's.
        var bytes: [UInt8] = try source.bytes(at: 0, count: Int(min(source.size, 1 << 20)))
        withUnsafeBytes(of: source.size.littleEndian) { bytes += $0 }
        var out: [UInt8] = []
        for seed in UInt64(0)..<4 {
            var hash: UInt64 = 0xcbf29ce484222325 ^ (seed &* 0x9E3779B97F4A7C15)
            for b in bytes { hash = (hash ^ UInt64(b)) &* 0x100000001b3 }
            withUnsafeBytes(of: hash.littleEndian) { out += $0 }
        }
        var uuid = Array(out[0..<16])
        uuid[6] = (uuid[6] & 0x0F) | 0x40
        uuid[8] = (uuid[8] & 0x3F) | 0x80
        return (uuid, Array(out[16..<32]))
    }

    /// `assemble --format ext4|qcow2`: the booted namespace (the same walk as the archive,
    /// `--rehost` included) written as an ext4 image, then the `--add-tar` members on top; qcow2
    /// converted with qemu-img. Built in the output's temporary file (`OutputTarget`), put in
    /// place only when complete.
    func writeImage(_ request: AssembleRequest, resolved: ResolvedOutput, output: String, hooks: JobHooks) throws -> AssembleReport {
        let qcow2 = resolved.format == .qcow2
        if qcow2, Self.findTool("qemu-img") == nil {
            throw FWError(.unsupported, "a .qcow2 output needs qemu-img (not found in PATH); write .ext4 instead")
        }
        let tars = try request.addTar.map { try AddedTar(path: $0) }
        let reportFile = request.output.report ?? output + ".report.json"
        try checkReport(reportFile, output: output, inputs: inputFiles + request.addTar)
        let target = try OutputTarget(output, mode: .file, inputs: inputFiles + request.addTar, cancellation: hooks.cancellation ?? .process)
        var converted: String?
        defer { if let converted { unlink(converted) } }
        var job: AssemblyJob
        do {
            job = try AssemblyJob(disk: self, request: request, resolved: resolved, hooks: hooks, output: output)
            let (geometry, estimate) = try imageGeometry(job.booted, request: request, tars: tars)
            // blocks < 2^32 (imageGeometry), so the size fits off_t.
            let imageBytes = geometry.blocks * Ext4ImageGeometry.blockSize
            guard let temporary = target.temporaryPath, ftruncate(target.fileDescriptor, off_t(imageBytes)) == 0 else {
                throw FWError(.io, "cannot size the image \(output) (\(imageBytes) bytes): \(String(cString: strerror(errno)))")
            }
            let writer = try Ext4ImageWriter(path: temporary, geometry: geometry)
            var tally = AssemblyTally(booted: job.booted, progress: hooks.progress, plannedBytes: estimate)
            let summary = try job.withWalk { walk in
                try writer.add(walk: &walk, dropDevices: request.noDevices, check: hooks.check) { item in
                    tally.count(item, contentBytes: writer.contentBytes)
                }
            }
            var added = 0, skipped = 0
            for tar in tars {
                let (n, problems) = try writer.add(tree: tar.reader, check: hooks.check)
                added += n
                skipped += tar.reader.skipped.notWritten
                for p in tar.reader.problems { job.report.warn(.addTar, at: tar.path, p) }
                for p in problems { job.report.warn(.addTar, at: tar.path, p.description) }
            }
            try writer.finish()
            if writer.linkLimitCopies > 0 {
                job.report.warn(.linkLimit, at: nil, "\(writer.linkLimitCopies) hardlink path(s) written as a copy of their file, "
                                + "which had \(writer.maximumLinks) links already (ext4's limit): \(writer.linkLimited.listed)")
            }
            job.report.members = tally.members
            job.report.droppedDevices = summary.droppedDevices
            job.report.files = writer.files
            job.report.hardlinks = writer.hardlinks
            job.report.contentBytes = writer.contentBytes
            job.report.readErrors(writer.problems)
            job.report.partitions = tally.partitions
            job.report.ext4 = Ext4ImageReport(blocks: geometry.blocks, blockSize: Ext4ImageGeometry.blockSize, inodes: writer.inodesUsed,
                                              inodesTotal: writer.inodesTotal,
                                              uuid: UUID(uuid: geometry.uuid.withUnsafeBytes { $0.load(as: uuid_t.self) }).uuidString.lowercased(),
                                              estimatedTarBytes: estimate, paddingBytes: Self.paddingBytes(request),
                                              container: qcow2 ? "qcow2 (qemu-img)" : "raw", addedTars: request.addTar, addedMembers: added,
                                              skippedMembers: tars.isEmpty ? nil : skipped,
                                              linkLimitCopies: writer.linkLimitCopies)
            try job.finish(walkProblems: summary.problems)
            if qcow2 {
                converted = target.siblingTemporaryPath(suffix: "qcow2")
                try Self.runTool("qemu-img", ["convert", "-f", "raw", "-O", "qcow2", temporary, converted!], hooks: hooks)
                try target.adopt(converted!)
                converted = nil
            }
            try target.commit(mode: 0o644)
        } catch {
            target.abort()
            throw placed(error)
        }
        try job.writeReport(to: reportFile, besides: output)
        return job.report
    }

    /// `--padding` in bytes (MiB given, checked against `maximumPaddingMiB` by `validate`).
    static func paddingBytes(_ request: AssembleRequest) -> UInt64 {
        (request.padding ?? 4096) << 20
    }

    /// The image's geometry: penguin's sizing formula over the content as penguin's tar would
    /// hold it (one metadata-only walk), the inode count and the UUID.
    private func imageGeometry(_ booted: BootedNamespace, request: AssembleRequest, tars: [AddedTar]) throws -> (Ext4ImageGeometry, UInt64) {
        // Checked sums: a file's size comes from the disk (a squashfs may claim 2^64 - 1 bytes).
        var tarBytes: UInt64? = 1024
        var entries = 0
        func grow(_ n: UInt64?) { tarBytes = tarBytes.flatMap { t in n.flatMap { t.addingReportingOverflow($0).overflow ? nil : t + $0 } } }
        func blocks512(_ n: UInt64) -> UInt64? { n.addingReportingOverflow(511).overflow ? nil : (n + 511) / 512 * 512 }
        var sizing = booted.walk()
        while let item = sizing.next() {
            entries += 1
            grow(512)
            let xattrBytes = item.metadata.xattrs.reduce(0) { $0 + $1.name.utf8.count + $1.value.count + 32 }
            if xattrBytes > 0 || item.path.count > 99 { grow(512 + UInt64((xattrBytes + item.path.count + 511) / 512 * 512)) }
            if item.metadata.type == .regular, item.hardlinkTarget == nil { grow(blocks512(item.metadata.size)) }
        }
        for t in tars {
            grow(t.size)
            entries += t.reader.entryCount
        }
        let padding = Self.paddingBytes(request)
        guard let content = tarBytes, let geometry = Ext4ImageGeometry.penguin(tarBytes: content, padding: padding, entries: entries) else {
            throw FWError(.limitExceeded, "the ext4 image would need more than \(Ext4ImageGeometry.maximumBlocks) blocks of 4 KiB "
                          + "(16 TiB, the most an ext4 without the 64bit feature holds) for \(tarBytes.map { "\($0) bytes of content" } ?? "content whose size overflows 64 bits") "
                          + "and \(padding >> 20) MiB of --padding; give --padding smaller")
        }
        let blocks = geometry.blocks
        let inodes = request.inodes ?? geometry.inodes
        var identity = try derivedIdentity()
        if let u = request.uuid.flatMap(UUID.init(uuidString:)) { identity.uuid = withUnsafeBytes(of: u.uuid) { Array($0) } }
        // The root's mtime stamps the superblock; an unreadable root leaves 0 (the walk reports it).
        let rootTime = (try? booted.namespace.metadata(of: booted.namespace.rootInode).mtime.seconds) ?? 0  // the walk reports an unreadable root
        return (Ext4ImageGeometry(blocks: blocks, inodes: inodes, uuid: identity.uuid, hashSeed: identity.seed,
                                  timestamp: UInt32(truncatingIfNeeded: max(rootTime, 0))), content)
    }

    /// Runs a tool to the end, stopping it when the job is cancelled.
    static func runTool(_ name: String, _ arguments: [String], hooks: JobHooks) throws {
        guard let tool = findTool(name) else { throw FWError(.unsupported, "\(name) is not installed (not found in PATH)") }
        let p = Process()
        p.executableURL = URL(fileURLWithPath: tool)
        p.arguments = arguments
        try p.run()
        while p.isRunning {
            if hooks.isCancelled {
                p.terminate()
                p.waitUntilExit()
                try hooks.check()
            }
            usleep(20_000)
        }
        guard p.terminationStatus == 0 else { throw FWError(.io, "\(name) \(arguments.first ?? "") failed with status \(p.terminationStatus)") }
    }

    static func findTool(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}

/// A tar given with `--add-tar`: plain, or gzip/zstd-compressed (decompressed once into an
/// unlinked temporary file), indexed before anything is written, so a bad one fails the job
/// before the output is touched.
struct AddedTar {
    let path: String
    /// Bytes of the (decompressed) tar.
    let size: UInt64
    let reader: TarReader

    init(path: String) throws {
        self.path = path
        let source = try decompressedStream(try FileSource(path: path))
        guard source.size >= 512 else {
            throw FWError(.corrupt, "--add-tar \(path): \(source.size) bytes is not a tar (a tar holds at least one 512-byte block)")
        }
        size = source.size
        do {
            reader = try TarReader(source: source, name: path)
        } catch let e as FWError {
            throw FWError(e.code, "--add-tar \(path) is not a readable tar: \(e.message)", cause: e)
        }
    }
}
