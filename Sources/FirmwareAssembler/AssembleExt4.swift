import Archive
import DiskImage
import Ext4Image
import FileSystemTar
import FileSystems
import Foundation
import MountPlan

/// What `assemble` writes: the archive (the default) or an ext4 filesystem image.
public enum AssembleFormat: String, Sendable, CaseIterable {
    case tar, ext4
}

/// `--format ext4` options (docs/rehosting.md).
public struct Ext4ImageOptions: Sendable {
    /// Free space added to the content, as penguin's 4 GiB padding.
    public var padding: UInt64 = 4 << 30
    /// Inode count; nil: penguin's formula.
    public var inodes: UInt32?
    /// Filesystem UUID (and hash seed); nil: derived from the disk.
    public var uuid: UUID?
    /// Tars whose members are written on top, in order (penguin's igloo files).
    public var addTars: [String] = []

    public init() {}
}

/// With `--format ext4`: what the image is.
public struct Ext4ImageReport: Sendable, Codable, Equatable {
    public var blocks: UInt64
    public var blockSize: UInt64
    public var inodes: UInt32
    public var uuid: String
    /// The size penguin's tar of the same content would have, the base of the sizing formula.
    public var estimatedTarBytes: UInt64
    public var paddingBytes: UInt64
    /// "raw", or "qcow2 (qemu-img)".
    public var container: String
    public var addedTars: [String]
    public var addedMembers: Int

    enum CodingKeys: String, CodingKey {
        case blocks, blockSize = "block_size", inodes, uuid, estimatedTarBytes = "estimated_tar_bytes"
        case paddingBytes = "padding_bytes", container, addedTars = "added_tars", addedMembers = "added_members"
    }
}

extension Disk {
    /// A filesystem UUID derived from the disk: two FNV-1a hashes of its size and first MiB,
    /// made an RFC 4122 version-4 UUID; the hash seed is the next 16 bytes.
    func derivedIdentity() -> (uuid: [UInt8], seed: [UInt8]) {
        var bytes: [UInt8] = []
        if let h = FileHandle(forReadingAtPath: path) {
            bytes = [UInt8](h.readData(ofLength: 1 << 20))
            let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? UInt64) ?? nil
            withUnsafeBytes(of: (size ?? 0).littleEndian) { bytes += $0 }
            try? h.close()
        }
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

    /// `assemble --format ext4`: the booted namespace (the same walk as the archive) written
    /// as an ext4 image, then the `addTars` members on top; `.qcow2` outputs converted with
    /// qemu-img. The image is built in a hidden file beside the output, renamed over it on success.
    func writeExt4Image(options: AssembleOptions) throws -> AssembleReport {
        let output = options.output ?? (Disk.defaultOutputName(for: path).replacingOccurrences(of: ".rootfs.tar.gz", with: ".ext4"))
        guard output != "-" else { throw FWError(.invalidArgument, "an ext4 image cannot be written to standard output") }
        let qcow2 = output.hasSuffix(".qcow2")
        if qcow2, Self.findTool("qemu-img") == nil {
            throw FWError(.unsupported, "a .qcow2 output needs qemu-img (not found in PATH); write .ext4 instead")
        }
        let booted = try BootedNamespace(disk: self, options: options.plan)
        let plan = booted.plan
        let e = options.ext4

        // Sizing: the content as penguin's tar would hold it (one metadata-only walk).
        var tarBytes: UInt64 = 1024
        var entries = 0
        var sizing = booted.walk()
        while let item = sizing.next() {
            entries += 1
            tarBytes += 512
            let xattrBytes = item.metadata.xattrs.reduce(0) { $0 + $1.name.utf8.count + $1.value.count + 32 }
            if xattrBytes > 0 || item.path.count > 99 { tarBytes += 512 + UInt64((xattrBytes + item.path.count + 511) / 512 * 512) }
            if item.metadata.type == .regular, item.hardlinkTarget == nil { tarBytes += (item.metadata.size + 511) / 512 * 512 }
        }
        var tars: [TarReader] = []
        for t in e.addTars {
            let source = try FileSource(path: t)
            let fs = try TarReader(source: source, name: t)
            tars.append(fs)
            tarBytes += source.size
            entries += fs.entryCount
        }
        var (blocks, inodes) = Ext4ImageGeometry.penguin(tarBytes: tarBytes, padding: e.padding, entries: entries)
        if let n = e.inodes { inodes = n }
        var identity = derivedIdentity()
        if let u = e.uuid { identity.uuid = withUnsafeBytes(of: u.uuid) { Array($0) } }
        let rootTime = (try? booted.namespace.metadata(of: booted.namespace.rootInode).mtime.seconds) ?? 0
        let geometry = Ext4ImageGeometry(blocks: blocks, inodes: inodes, uuid: identity.uuid, hashSeed: identity.seed,
                                         timestamp: UInt32(truncatingIfNeeded: max(rootTime, 0)))

        // The image is built beside the output and renamed over it: an existing output that is not
        // a regular file (/dev/null, a device) would be replaced, so it is refused.
        var existing = stat()
        if stat(output, &existing) == 0, existing.st_mode & S_IFMT != S_IFREG {
            throw FWError(.invalidArgument, "output \(output) exists and is not a regular file; an ext4 image is written to a file")
        }
        let directory = (output as NSString).deletingLastPathComponent
        let base = (output as NSString).lastPathComponent
        var template = Array(((directory.isEmpty ? "." : directory) + "/." + base + ".XXXXXX").utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else { throw FWError(.io, "cannot create a temporary file beside \(output): \(String(cString: strerror(errno)))") }
        let temporary = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var converted: String?
        defer {
            unlink(temporary)
            if let converted { unlink(converted) }
        }
        guard ftruncate(fd, off_t(blocks * Ext4ImageGeometry.blockSize)) == 0 else {
            close(fd)
            throw FWError(.io, "cannot size \(temporary): \(String(cString: strerror(errno)))")
        }
        close(fd)

        var report = AssembleReport(tool: "fwassemble", version: fwassembleVersion, image: path, output: output,
                                    compression: "none", plan: plan, partitions: [], members: 0,
                                    files: 0, hardlinks: 0, contentBytes: 0, tarBytes: 0, droppedDevices: [],
                                    skippedSockets: [], warnings: plan.warnings, readErrors: [])
        report.format = AssembleFormat.ext4.rawValue
        let writer = try Ext4ImageWriter(path: temporary, geometry: geometry)
        var tally = AssemblyTally(booted: booted, progress: options.progress, plannedBytes: tarBytes)
        var walk = booted.walk()
        while let item = walk.next() {
            let m = item.metadata
            if options.noDevices, m.type == .characterDevice || m.type == .blockDevice {
                report.droppedDevices.append(item.displayPath)
                continue
            }
            try writer.add(path: item.path, metadata: m, hardlinkTarget: item.hardlinkTarget,
                           contents: { try item.reader.openFile(m.inode) },
                           mayLinkAgain: item.reader.mayAppearAgain(m.inode))
            tally.count(item, contentBytes: writer.contentBytes)
        }
        var added = 0
        for tar in tars {
            var tw = TreeWalk(tar)
            while let item = tw.next() {
                if item.path.isEmpty { continue }  // the tar's "./" does not change the image's root
                try writer.add(path: item.path, metadata: item.metadata, hardlinkTarget: item.hardlinkTarget,
                               contents: { try tar.openFile(item.metadata.inode) }, replace: true, mayLinkAgain: true)
                added += 1
            }
            report.warnings += tw.problems.map { "\(tar.sourceName): \($0.description)" }
        }
        try writer.finish()
        report.members = tally.members
        report.files = writer.files
        report.hardlinks = writer.hardlinks
        report.contentBytes = writer.contentBytes
        report.readErrors = writer.problems.map { "\($0.path): \($0.message)" }
        report.partitions = tally.partitions
        report.warnings += booted.namespace.problems.map(\.description)
        report.warnings += walk.problems.map(\.placedDescription)
        report.addJournals(of: booted)
        report.ext4 = Ext4ImageReport(blocks: blocks, blockSize: Ext4ImageGeometry.blockSize, inodes: inodes,
                                      uuid: UUID(uuid: identity.uuid.withUnsafeBytes { $0.load(as: uuid_t.self) }).uuidString.lowercased(),
                                      estimatedTarBytes: tarBytes, paddingBytes: e.padding,
                                      container: qcow2 ? "qcow2 (qemu-img)" : "raw", addedTars: e.addTars, addedMembers: added)

        var final = temporary
        if qcow2, let qemu = Self.findTool("qemu-img") {
            converted = temporary + ".qcow2"
            let p = Process()
            p.executableURL = URL(fileURLWithPath: qemu)
            p.arguments = ["convert", "-f", "raw", "-O", "qcow2", temporary, converted!]
            try p.run()
            p.waitUntilExit()
            guard p.terminationStatus == 0 else { throw FWError(.io, "qemu-img convert failed with status \(p.terminationStatus)") }
            final = converted!
        }
        chmod(final, 0o644)
        guard rename(final, output) == 0 else { throw FWError(.io, "cannot rename the image to \(output): \(String(cString: strerror(errno)))") }
        if let reportFile = options.reportPath ?? Optional(output + ".report.json") {
            do {
                try Data((try report.json() + "\n").utf8).write(to: URL(fileURLWithPath: reportFile), options: .atomic)
            } catch {
                throw FWError(.io, "cannot write the report \(reportFile): \(error.localizedDescription)", cause: error)
            }
        }
        return report
    }

    static func findTool(_ name: String) -> String? {
        for dir in (ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":") {
            let candidate = "\(dir)/\(name)"
            if FileManager.default.isExecutableFile(atPath: candidate) { return candidate }
        }
        return nil
    }
}
