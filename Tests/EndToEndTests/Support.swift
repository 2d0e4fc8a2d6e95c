import FirmwareAssembler
import Foundation
import TestSupport
import Testing

/// The built `fwassemble` binary (TestSupport's runner).
typealias CLI = FwassembleCLI

/// A scratch directory removed at deinit.
final class ScratchDir {
    let path: String
    init() throws {
        path = FileManager.default.temporaryDirectory.appendingPathComponent("e2e-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    deinit { try? FileManager.default.removeItem(atPath: path) }
}

enum TarView {
    static var script: String { TestImages.repositoryRoot.appendingPathComponent("images/tar_manifest.py").path }

    /// The archive's manifest in images/manifest.py's format, read by Python's tarfile.
    static func manifest(_ archive: String) throws -> [ManifestEntry] {
        let data = try TestImages.run(["python3", script, archive])
        return try String(decoding: data, as: UTF8.self).split(separator: "\n").map {
            try JSONDecoder().decode(ManifestEntry.self, from: Data($0.utf8))
        }
    }

    /// Raw member headers (name, type flag, uname, gname, linkname) through Python's tarfile.
    struct Member: Decodable { var name: String; var type: String; var uname: String; var gname: String; var linkname: String }
    static func members(_ archive: String) throws -> [Member] {
        let code = """
        import json, sys, tarfile
        with tarfile.open(sys.argv[1], "r:*") as t:
            for m in t:
                print(json.dumps({"name": m.name, "type": m.type.decode(), "uname": m.uname, "gname": m.gname, "linkname": m.linkname}))
        """
        let data = try TestImages.run(["python3", "-c", code, archive])
        return try String(decoding: data, as: UTF8.self).split(separator: "\n").map {
            try JSONDecoder().decode(Member.self, from: Data($0.utf8))
        }
    }
}

/// The booted namespace as the kernel builds it: every partition of the plan loop-mounted
/// read-only at its place under a temporary directory, binds applied with `mount --bind` then
/// remounted read-only, in plan order. vfat cannot be loop-mounted here, so its mount points are
/// listed in `excluded`. `unmount()` undoes everything (call it in a defer).
final class KernelNamespace {
    let root: String
    private(set) var mounted: [String] = []
    private(set) var excluded: [String] = []
    /// Read-only loop devices of the btrfs partitions, one per partition: btrfs mounts one device
    /// several times (one subvolume each) but refuses a second loop device with the same fsid.
    private(set) var loops: [Int: String] = [:]

    init(image: String, plan: Plan, inspection: DiskInspection) throws {
        root = FileManager.default.temporaryDirectory.appendingPathComponent("e2e-ns-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: root, withIntermediateDirectories: true)
        do {
            for m in plan.mounts {
                let target = m.where == "/" ? root : root + m.where
                if excluded.contains(where: { m.where == $0 || m.where.hasPrefix($0 + "/") }) { continue }
                switch m.kind {
                case .partition:
                    let p = try #require(inspection.partitions.first { $0.index == m.partition })
                    let fstype = try #require(m.fstype)
                    if fstype == "vfat" { excluded.append(m.where); continue }
                    if fstype == "btrfs" {
                        let loop = try loops[p.index] ?? String(decoding: TestImages.run(["losetup", "-f", "--show", "-r", "-o", "\(p.start)",
                                                                                           "--sizelimit", "\(p.size)", image]), as: UTF8.self)
                            .trimmingCharacters(in: .whitespacesAndNewlines)
                        loops[p.index] = loop
                        let subvolume = m.options.split(separator: ",").filter { $0.hasPrefix("subvol") }
                        try TestImages.run(["mount", "-t", "btrfs", "-o", (["ro"] + subvolume).joined(separator: ","), loop, target])
                        mounted.append(target)
                        continue
                    }
                    try TestImages.run(["mount", "-t", fstype, "-o", "loop,ro,offset=\(p.start),sizelimit=\(p.size)", image, target])
                    mounted.append(target)
                case .bind:
                    let what = try #require(m.what)
                    try TestImages.run(["mount", "--bind", root + what, target])
                    mounted.append(target)
                    try TestImages.run(["mount", "-o", "remount,bind,ro", target])
                case .overlay:
                    Issue.record("overlay mounts are not replayed by this helper")
                }
            }
        } catch {
            unmount()
            throw error
        }
    }

    func unmount() {
        for target in mounted.reversed() {
            _ = try? TestImages.run(["umount", target])
        }
        mounted = []
        for loop in loops.values { _ = try? TestImages.run(["losetup", "-d", loop]) }   // cleanup: nothing to report
        loops = [:]
        try? FileManager.default.removeItem(atPath: root)
    }

    /// manifest.py over the namespace, without sockets (tar cannot hold them) and without the
    /// excluded (vfat) subtrees.
    func manifest() throws -> [ManifestEntry] {
        try Manifest.ofDirectory(root).filter { $0.type != "socket" && !isExcluded($0.path) }
    }

    func isExcluded(_ path: String) -> Bool {
        excluded.contains { ex in
            let rel = String(ex.dropFirst())
            return path == rel || path.hasPrefix(rel + "/")
        }
    }
}
