import DiskImage
import FileSystems
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#endif

/// What a tar member may hold that an image cannot (docs/limits.md, "Tar input").
public enum TarLimits {
    /// ext4's times: 32 bits of seconds and two epoch bits, 1901-12-13T20:45:52Z to
    /// 2446-05-10T22:38:55Z. A member's time outside is clamped to the nearest end.
    public static let earliestTime: Int64 = -(1 << 31)
    public static let latestTime: Int64 = (1 << 34) - (1 << 31) - 1
}

/// The members a tar reader skipped or changed, by reason: how many, and the first few paths.
public struct TarSkips: Sendable {
    public enum Reason: Int, CaseIterable, Sendable {
        case unsafePath, belowNonDirectory, missingHardlinkTarget, unsupportedType, ownerBeyond32Bits, timeClamped

        var text: String {
            switch self {
            case .unsafePath: "not written (a '..' component or a NUL byte in the path)"
            case .belowNonDirectory: "not written (below a symlink or another non-directory, which stays as it is)"
            case .missingHardlinkTarget: "not written (a hardlink to no earlier file, or to a directory)"
            case .unsupportedType: "not written (a member type that is not a file, directory, link, device or FIFO)"
            case .ownerBeyond32Bits: "not written (a uid or gid beyond 32 bits; never mapped to another owner)"
            case .timeClamped: "written with the time clamped to 1901-12-13..2446-05-10 (ext4's range)"
            }
        }
    }
    private var samples: [Reason: PathSample] = [:]

    /// How many members each reason took.
    public var counts: [Reason: Int] { samples.mapValues(\.count) }

    mutating func add(_ reason: Reason, _ path: [UInt8]) {
        samples[reason, default: PathSample()].add(String(decoding: path, as: UTF8.self))
    }

    /// Members not written at all (a clamped time is written).
    public var notWritten: Int { samples.filter { $0.key != .timeClamped }.values.reduce(0) { $0 + $1.count } }

    /// One line per reason: "2 entries not written (...): a/../../x, ../y".
    public var lines: [String] {
        Reason.allCases.compactMap { reason in
            guard let sample = samples[reason] else { return nil }
            return "\(sample.count) \(sample.count == 1 ? "entry" : "entries") \(reason.text): \(sample.listed)"
        }
    }
}

extension TarReader {
    /// A member's path as "a/b/c": leading "/", empty and "." components dropped (as GNU tar and
    /// containerd place an absolute name below the root); nil when a component is ".." or the
    /// path holds a NUL byte.
    static func normalised(_ path: [UInt8]) -> [UInt8]? {
        // One pass over the bytes: nil at a NUL or a ".." component; the path itself when it is
        // already normal (the usual case), else a copy without the empty and "." components.
        let isNormal = path.withUnsafeBufferPointer { p -> Bool? in
            var normal = true
            var start = 0, i = 0
            let count = p.count
            while i <= count {
                let byte: UInt8 = i < count ? p[i] : 0x2F
                if byte == 0 { return nil }
                if byte == 0x2F {
                    let length = i &- start
                    if length == 2, p[start] == 0x2E, p[start &+ 1] == 0x2E { return nil }
                    if length == 0 || (length == 1 && p[start] == 0x2E) { normal = false }
                    start = i &+ 1
                }
                i &+= 1
            }
            return normal || count == 0
        }
        guard let isNormal else { return nil }
        if isNormal { return path }
        return path.withUnsafeBufferPointer { p in
            var out = [UInt8](repeating: 0, count: p.count)
            var n = 0, start = 0, i = 0
            while i <= p.count {
                if i == p.count || p[i] == 0x2F {
                    let length = i &- start
                    if length > 0, !(length == 1 && p[start] == 0x2E) {
                        if n > 0 { out[n] = 0x2F; n &+= 1 }
                        var j = start
                        while j < i { out[n] = p[j]; n &+= 1; j &+= 1 }
                    }
                    start = i &+ 1
                }
                i &+= 1
            }
            out.removeSubrange(n...)
            return out
        }
    }

    /// The directory at `path` (normalised), implied directories made for missing components;
    /// nil when a component is not a directory (a symlink stays a symlink; the member below it
    /// is not written). Starts from the last member's parent: only the components after the
    /// common prefix are looked up.
    func directory(_ path: [UInt8]) -> UInt64? {
        let common = path.withUnsafeBufferPointer { a in
            lastParent.withUnsafeBufferPointer { b -> Int in
                let n = min(a.count, b.count)
                if n > 0, memcmp(a.baseAddress!, b.baseAddress!, n) == 0 { return n }
                var i = 0
                while i < n, a[i] == b[i] { i += 1 }
                return i
            }
        }
        // The deepest cached directory whose path is a prefix of `path` at a component boundary.
        var keep = lastChain.count
        while keep > 0 {
            let end = lastChain[keep - 1].end
            if end <= common, end == path.count || path[end] == 0x2F { break }
            keep -= 1
        }
        lastChain.removeSubrange(keep...)
        var current = lastChain.last?.inode ?? 1
        var start = lastChain.last.map { $0.end + 1 } ?? 0
        defer { lastParent = Array(path[..<(lastChain.last?.end ?? 0)]) }
        while start < path.count {
            let end = path[start...].firstIndex(of: 0x2F) ?? path.count
            let name = Array(path[start..<end])
            if let next = nodes[Int(current - 1)].children[name] {
                guard nodes[Int(next - 1)].metadata.type == .directory else { return nil }
                current = next
            } else {
                let inode = UInt64(nodes.count + 1)
                nodes.append(Node(metadata: Self.impliedDirectory(inode: inode), parent: current, name: name, implied: true))
                nodes[Int(current - 1)].children[name] = inode
                current = inode
            }
            lastChain.append((end, current))
            start = end + 1
        }
        return current
    }

    /// The inode at a normalised path, without following symlinks; nil when missing.
    func inode(at path: [UInt8]) -> UInt64? {
        var current: UInt64 = 1
        for c in path.split(separator: 0x2F) {
            guard let next = nodes[Int(current - 1)].children[Array(c)] else { return nil }
            current = next
        }
        return current
    }

    private func node(_ inode: UInt64) throws -> Node {
        guard inode >= 1, inode <= UInt64(nodes.count) else { throw error("no inode \(inode)") }
        return nodes[Int(inode - 1)]
    }

    // MARK: FileSystemReader

    public func metadata(of inode: UInt64) throws -> Metadata {
        try node(inode).metadata
    }

    public func directoryEntries(of inode: UInt64) throws -> [DirectoryEntry] {
        let n = try node(inode)
        guard n.metadata.type == .directory else { throw error("inode \(inode) is not a directory") }
        return n.children.map { DirectoryEntry(name: $0.key, inode: $0.value) }
    }

    /// The name's entry from the directory's index (not a scan of its entries).
    public func entry(named name: [UInt8], in directory: UInt64) throws -> DirectoryEntry? {
        let n = try node(directory)
        guard n.metadata.type == .directory else { throw error("inode \(directory) is not a directory") }
        return n.children[name].map { DirectoryEntry(name: name, inode: $0) }
    }

    public func openFile(_ inode: UInt64) throws -> any FileContents {
        let n = try node(inode)
        guard n.metadata.type == .regular else { throw error("inode \(inode) is not a regular file") }
        return TarFileContents(source: source, offset: n.dataOffset, size: n.metadata.size)
    }
}

final class TarFileContents: FileContents {
    let source: any ByteSource
    let offset: UInt64
    let size: UInt64
    private var position: UInt64 = 0

    init(source: any ByteSource, offset: UInt64, size: UInt64) {
        self.source = source
        self.offset = offset
        self.size = size
    }

    func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
        let n = Int(min(UInt64(buffer.count), size - position))
        guard n > 0 else { return 0 }
        try source.readExactly(at: offset + position, into: UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]))
        position += UInt64(n)
        return n
    }
}
