import CZlib
import FileSystems
import Foundation

/// One entry of a tree manifest, in the format `images/manifest.py` prints, so a reader's view
/// can be compared field by field with an independent view (the source tree, a kernel mount).
public struct ManifestEntry: Codable, Equatable, Sendable {
    public var path: String
    public var type: String
    public var perm: Int
    public var uid: UInt32
    public var gid: UInt32
    public var mtime: Int64
    public var mtime_ns: UInt32
    public var xattrs: [String: String]
    public var size: UInt64?
    public var crc32: UInt32?
    public var target: String?
    public var rdev: [UInt32]?
    public var link: String?
}

public enum Manifest {
    /// Fields a comparison can leave out, for formats that do not keep them.
    public enum Field: Hashable, Sendable {
        case mtimeNanoseconds, mtime, owner, xattrs, links, permissions
    }

    /// The entries of a manifest as images/manifest.py writes it: one JSON object a line.
    public static func decode(_ text: some StringProtocol) throws -> [ManifestEntry] {
        try text.split(separator: "\n").map { try JSONDecoder().decode(ManifestEntry.self, from: Data($0.utf8)) }
    }

    /// A manifest a recipe wrote beside its images (`name`: "fs-ubi.manifest" in images/out).
    public static func load(_ name: String) throws -> [ManifestEntry] {
        try decode(String(contentsOfFile: try TestImages.path(name), encoding: .utf8))
    }

    /// `list` with the root's mtime (seconds and nanoseconds) cleared: the kernel or the image
    /// tool stamps the root of a tree it copies in, so its time is not the source's.
    public static func withoutRootTime(_ list: [ManifestEntry]) -> [ManifestEntry] {
        list.map { e in
            var e = e
            if e.path == "." { e.mtime = 0; e.mtime_ns = 0 }
            return e
        }
    }

    /// The manifest of a directory on the host, from the independent Python script.
    public static func ofDirectory(_ path: String) throws -> [ManifestEntry] {
        let script = TestImages.repositoryRoot.appendingPathComponent("images/manifest.py").path
        return try decode(String(decoding: try TestImages.run(["python3", script, path]), as: UTF8.self))
    }

    /// The manifest of what a reader yields, walking it in the same order.
    public static func of(_ reader: any FileSystemReader, readContents: Bool = true) throws -> (entries: [ManifestEntry], problems: [WalkProblem]) {
        var walk = TreeWalk(reader)
        var entries: [ManifestEntry] = []
        var firstPath: [UInt64: String] = [:]
        var buffer = [UInt8](repeating: 0, count: 1 << 20)
        while let item = walk.next() {
            let m = item.metadata
            let path = item.path.isEmpty ? "." : String(decoding: item.path, as: UTF8.self)
            var e = ManifestEntry(path: path, type: m.type.rawValue, perm: Int(m.permissions), uid: m.uid, gid: m.gid,
                                  mtime: m.mtime.seconds, mtime_ns: m.mtime.nanoseconds,
                                  xattrs: Dictionary(m.xattrs.map { ($0.name, $0.value.map { String(format: "%02x", $0) }.joined()) },
                                                     uniquingKeysWith: { a, _ in a }))
            switch m.type {
            case .regular:
                e.size = m.size
                if readContents {
                    let file = try reader.openFile(m.inode)
                    var crc: uLong = 0
                    var total: UInt64 = 0
                    while true {
                        let n = try buffer.withUnsafeMutableBytes { try file.read(into: $0) }
                        if n == 0 { break }
                        total += UInt64(n)
                        crc = buffer.withUnsafeBytes { CZlib.crc32(crc, $0.bindMemory(to: Bytef.self).baseAddress, uInt(n)) }
                    }
                    e.crc32 = UInt32(crc)
                    if total != m.size { e.size = total }
                }
            case .symlink:
                e.target = m.symlinkTarget.map { String(decoding: $0, as: UTF8.self) }
            case .characterDevice, .blockDevice:
                e.rdev = m.device.map { [$0.major, $0.minor] }
            default:
                break
            }
            if m.type != .directory, m.linkCount > 1 {
                if let first = firstPath[m.inode] { e.link = first } else { firstPath[m.inode] = path; e.link = path }
            }
            entries.append(e)
        }
        return (entries, walk.problems)
    }

    /// Human-readable differences between two manifests (empty when equal).
    public static func differences(expected: [ManifestEntry], actual: [ManifestEntry], ignoring: Set<Field> = []) -> [String] {
        func normalise(_ e: ManifestEntry) -> ManifestEntry {
            var e = e
            if ignoring.contains(.mtimeNanoseconds) || ignoring.contains(.mtime) { e.mtime_ns = 0 }
            if ignoring.contains(.mtime) { e.mtime = 0 }
            if ignoring.contains(.owner) { e.uid = 0; e.gid = 0 }
            if ignoring.contains(.xattrs) { e.xattrs = [:] }
            if ignoring.contains(.links) { e.link = nil }
            if ignoring.contains(.permissions) { e.perm = 0 }
            return e
        }
        var diffs: [String] = []
        let exp = Dictionary(expected.map { ($0.path, normalise($0)) }, uniquingKeysWith: { a, _ in a })
        let act = Dictionary(actual.map { ($0.path, normalise($0)) }, uniquingKeysWith: { a, _ in a })
        for e in expected where act[e.path] == nil { diffs.append("missing: \(e.path)") }
        for a in actual where exp[a.path] == nil { diffs.append("unexpected: \(a.path)") }
        for e in expected {
            guard let a = act[e.path], let n = exp[e.path], a != n else { continue }
            diffs.append("differs: \(e.path)\n  expected \(n)\n  actual   \(a)")
        }
        if diffs.isEmpty, expected.map(\.path) != actual.map(\.path) {
            diffs.append("same entries, different order")
        }
        return diffs
    }
}
