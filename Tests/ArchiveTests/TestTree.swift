import DiskImage
import FileSystems
import Foundation

/// A small in-memory filesystem for the archive tests: every entry kind with chosen metadata.
final class TestTree: FileSystemReader {
    let formatName = "test"
    let sourceName = "test tree"
    let rootInode: UInt64 = 1
    private var metas: [UInt64: Metadata] = [:]
    private var children: [UInt64: [DirectoryEntry]] = [:]
    private var contents: [UInt64: [UInt8]] = [:]
    /// Files whose stream yields other bytes than their metadata's size says.
    var streamOverride: [UInt64: [UInt8]] = [:]
    private var next: UInt64 = 2

    init() {
        metas[1] = Metadata(type: .directory, permissions: 0o755, uid: 0, gid: 0, size: 0,
                            mtime: Timestamp(seconds: 1_700_000_000), inode: 1)
        children[1] = []
    }

    /// Adds an entry under an existing directory; returns its inode.
    @discardableResult
    func add(_ path: [UInt8], _ type: FileType, perm: UInt16, uid: UInt32 = 0, gid: UInt32 = 0,
             mtime: Timestamp = Timestamp(seconds: 1_700_000_000), content: [UInt8] = [],
             target: [UInt8]? = nil, device: DeviceNumber? = nil, xattrs: [ExtendedAttribute] = []) -> UInt64 {
        let inode = next
        next += 1
        metas[inode] = Metadata(type: type, permissions: perm, uid: uid, gid: gid,
                                size: type == .regular ? UInt64(content.count) : UInt64(target?.count ?? 0),
                                mtime: mtime, inode: inode, symlinkTarget: target, device: device, xattrs: xattrs)
        if type == .directory { children[inode] = [] }
        if type == .regular { contents[inode] = content }
        link(path, to: inode, counting: false)
        return inode
    }

    @discardableResult
    func add(_ path: String, _ type: FileType, perm: UInt16, uid: UInt32 = 0, gid: UInt32 = 0,
             mtime: Timestamp = Timestamp(seconds: 1_700_000_000), content: [UInt8] = [],
             target: String? = nil, device: DeviceNumber? = nil, xattrs: [ExtendedAttribute] = []) -> UInt64 {
        add(Array(path.utf8), type, perm: perm, uid: uid, gid: gid, mtime: mtime, content: content,
            target: target.map { Array($0.utf8) }, device: device, xattrs: xattrs)
    }

    /// Another name for `inode` (a hardlink).
    func link(_ path: [UInt8], to inode: UInt64, counting: Bool = true) {
        var parts = path.split(separator: 0x2F).map(Array.init)
        let name = parts.removeLast()
        var dir = rootInode
        for p in parts {
            guard let e = children[dir]?.first(where: { $0.name == p }) else { fatalError("test tree: no parent \(p)") }
            dir = e.inode
        }
        children[dir]?.append(DirectoryEntry(name: name, inode: inode))
        if counting { metas[inode]?.linkCount += 1 }
    }

    func metadata(of inode: UInt64) throws -> Metadata {
        guard let m = metas[inode] else { throw FWError(.notFound, "no inode \(inode)") }
        return m
    }

    func directoryEntries(of inode: UInt64) throws -> [DirectoryEntry] {
        guard let c = children[inode] else { throw FWError(.corrupt, "not a directory") }
        return c.reversed()   // any order: the walk sorts
    }

    func openFile(_ inode: UInt64) throws -> any FileContents {
        guard let c = contents[inode] else { throw FWError(.corrupt, "not a file") }
        return Stream(bytes: streamOverride[inode] ?? c, size: UInt64(c.count))
    }

    final class Stream: FileContents {
        let bytes: [UInt8]
        let size: UInt64
        var offset = 0
        init(bytes: [UInt8], size: UInt64) {
            self.bytes = bytes
            self.size = size
        }
        func read(into buffer: UnsafeMutableRawBufferPointer) throws -> Int {
            // Short reads on purpose (at most 100 000 bytes) to exercise the writer's loop.
            let n = min(buffer.count, bytes.count - offset, 100_000)
            guard n > 0 else { return 0 }
            bytes.withUnsafeBytes { src in
                UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n]).copyMemory(from: UnsafeRawBufferPointer(rebasing: src[offset..<(offset + n)]))
            }
            offset += n
            return n
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift), alternating with compressible runs.
func testBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var x = seed | 1
    var out = [UInt8](repeating: 0, count: count)
    for i in 0..<count {
        if (i / 4096) % 2 == 0 {
            x ^= x << 13; x ^= x >> 7; x ^= x << 17
            out[i] = UInt8(truncatingIfNeeded: x)
        } else {
            out[i] = UInt8(truncatingIfNeeded: i / 64)
        }
    }
    return out
}

/// The tree of the tests: every kind of entry and every field the archive must keep.
func sampleTree() -> TestTree {
    let t = TestTree()
    let cap: [UInt8] = [0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    t.add("bin", .directory, perm: 0o755)
    t.add("bin/su", .regular, perm: 0o4755, content: Array("#!/bin/sh\necho su\n".utf8))
    t.add("etc", .directory, perm: 0o755)
    t.add("etc/hostname", .regular, perm: 0o644, mtime: Timestamp(seconds: 1_600_000_000, nanoseconds: 123_456_789),
          content: Array("hello\n".utf8), xattrs: [ExtendedAttribute(name: "user.comment", value: [0x68, 0x00, 0x0A, 0xFF, 0x3D, 0x20])])
    t.add("etc/empty-file", .regular, perm: 0o600)
    t.add("etc/old", .regular, perm: 0o644, mtime: Timestamp(seconds: 86_399, nanoseconds: 500_000_000), content: [1, 2, 3])
    t.add("etc/dangling", .symlink, perm: 0o777, target: "/does/not/exist")
    t.add("etc/long-link", .symlink, perm: 0o777, target: String(repeating: "/very/long/target", count: 12) + "/end")
    t.add("etc/caf\u{e9}", .regular, perm: 0o644, content: Array("utf8\n".utf8))
    t.add("etc/caf\u{e9}-link", .symlink, perm: 0o777, target: "caf\u{e9}")
    t.add([0x65, 0x74, 0x63, 0x2F, 0x72, 0x61, 0x77, 0xFF, 0xFE], .regular, perm: 0o644, content: [9])
    t.add("etc/" + String(repeating: "n", count: 255), .regular, perm: 0o644, content: Array("long name\n".utf8))
    var deep = "deep"
    t.add(deep, .directory, perm: 0o755)
    for i in 1...30 {
        deep += "/directory\(i)"
        t.add(deep, .directory, perm: 0o750)
    }
    t.add(deep + "/file", .regular, perm: 0o644, content: Array("deep\n".utf8))
    t.add("dev", .directory, perm: 0o755)
    t.add("dev/null", .characterDevice, perm: 0o666, device: DeviceNumber(major: 1, minor: 3))
    t.add("dev/sda1", .blockDevice, perm: 0o660, gid: 6, device: DeviceNumber(major: 8, minor: 1))
    t.add("dev/bigdev", .characterDevice, perm: 0o644, device: DeviceNumber(major: 300, minor: 70000))
    t.add("home", .directory, perm: 0o755)
    t.add("home/user", .directory, perm: 0o700, uid: 1000, gid: 1000)
    t.add("home/user/notes.txt", .regular, perm: 0o644, uid: 1000, gid: 1000, content: Array("notes\n".utf8))
    t.add("home/big-ids", .regular, perm: 0o644, uid: 3_000_000, gid: 4_000_000_000, content: [0x41])
    t.add("srv", .directory, perm: 0o755)
    t.add("srv/opaque", .directory, perm: 0o755, xattrs: [ExtendedAttribute(name: "trusted.overlay.opaque", value: [0x79])])
    t.add("srv/whiteout", .characterDevice, perm: 0o000, device: DeviceNumber(major: 0, minor: 0))
    t.add("srv/fifo", .fifo, perm: 0o644)
    t.add("srv/socket", .socket, perm: 0o755)
    t.add("tmp", .directory, perm: 0o1777)
    t.add("usr", .directory, perm: 0o755)
    t.add("usr/bin", .directory, perm: 0o755)
    let busybox = t.add("usr/bin/busybox", .regular, perm: 0o755, content: Array("linked content\n".utf8))
    t.link(Array("bin/sh".utf8), to: busybox)
    t.link(Array("usr/bin/ls".utf8), to: busybox)
    t.add("usr/bin/ping", .regular, perm: 0o755, content: Array("ping\n".utf8),
          xattrs: [ExtendedAttribute(name: "security.capability", value: cap)])
    t.add("usr/bin/wall", .regular, perm: 0o2755, gid: 5, content: Array("#!/bin/sh\n".utf8))
    t.add("usr/lib", .directory, perm: 0o755)
    t.add("usr/lib/big.bin", .regular, perm: 0o644, content: testBytes(3_000_001, seed: 7))
    t.add("usr/lib/exact-block", .regular, perm: 0o644, content: testBytes(1 << 20, seed: 9))
    return t
}
