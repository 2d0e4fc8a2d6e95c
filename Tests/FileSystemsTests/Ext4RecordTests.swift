@testable import FileSystemExt4
import DiskImage
import FileSystems
import Foundation
import Testing
import TestSupport

/// The record decoders on hand-made bytes, checked against the kernel's definitions.
@Suite("Ext4 records")
struct Ext4RecordTests {
    @Test("timestamps: signed 32-bit seconds, two epoch bits, 30 bits of nanoseconds")
    func timestamps() {
        // Before 1970: the seconds field is signed.
        #expect(Ext4Inode.timestamp(0xFFFF_FFFF, extra: nil) == Timestamp(seconds: -1))
        // Epoch bits extend the range past 2038: 0x80000000 is -2^31, +1 epoch is +2^32.
        #expect(Ext4Inode.timestamp(0x8000_0000, extra: 1) == Timestamp(seconds: 1 << 31))
        #expect(Ext4Inode.timestamp(0, extra: 5 << 2 | 2) == Timestamp(seconds: 2 << 32, nanoseconds: 5))
        #expect(Ext4Inode.timestamp(1_600_000_000, extra: 123_456_789 << 2) == Timestamp(seconds: 1_600_000_000, nanoseconds: 123_456_789))
    }

    private func inode(mode: UInt16, block: [UInt8] = [], size: Int = 256, extraSize: UInt16 = 32) -> [UInt8] {
        var b = [UInt8](repeating: 0, count: size)
        b[0] = UInt8(mode & 0xFF); b[1] = UInt8(mode >> 8)
        for (i, v) in block.enumerated() { b[0x28 + i] = v }
        if size > 128 { b[0x80] = UInt8(extraSize & 0xFF); b[0x81] = UInt8(extraSize >> 8) }
        return b
    }

    @Test("device numbers: old encoding in i_block[0], new one in i_block[1]")
    func devices() throws {
        // old_encode_dev(8:1) = 0x0801
        let old = try Ext4Inode(inode(mode: 0o060660, block: [0x01, 0x08, 0, 0]), highIDs: true)
        #expect(try old.device() == DeviceNumber(major: 8, minor: 1))
        // new_encode_dev(300:70000) = (minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)
        let dev: UInt32 = (70000 & 0xFF) | (300 << 8) | ((70000 & ~0xFF) << 12)
        let bytes = [0, 0, 0, 0] + (0..<4).map { UInt8((dev >> (8 * $0)) & 0xFF) }
        let new = try Ext4Inode(inode(mode: 0o020644, block: bytes), highIDs: true)
        #expect(try new.device() == DeviceNumber(major: 300, minor: 70000))
    }

    @Test("an i_extra_isize that does not fit the inode is an error")
    func badExtraSize() {
        #expect(throws: FWError.self) { try Ext4Inode(inode(mode: 0o100644, extraSize: 200), highIDs: true) }
        #expect(throws: FWError.self) { try Ext4Inode(inode(mode: 0o100644, extraSize: 30), highIDs: true) }
        #expect(throws: FWError.self) { try Ext4Inode([UInt8](repeating: 0, count: 100), highIDs: true) }
    }

    @Test("largest addressable file: 2^32 blocks with extents, 12 + n + n^2 + n^3 with block maps")
    func maximumSize() {
        #expect(Ext4File.maximumSize(blockSize: 4096, extents: true) == 16 << 40)   // 16 TiB
        // ext2 with 1 KiB blocks: 256 pointers per block, about 16 GiB.
        #expect(Ext4File.maximumSize(blockSize: 1024, extents: false) == (12 + 256 + 65536 + 16_777_216) * 1024)
    }

    @Test("POSIX ACLs: ext4's compact form becomes getxattr's")
    func acl() throws {
        // ext4: version 1; USER_OBJ rw, USER 1000 rw, GROUP_OBJ r, MASK rw, OTHER r.
        let disk: [UInt8] = [1, 0, 0, 0, 1, 0, 6, 0, 2, 0, 6, 0, 0xE8, 3, 0, 0, 4, 0, 4, 0, 0x10, 0, 6, 0, 0x20, 0, 4, 0]
        let vfs = try Ext4ACL(disk: disk).vfsBytes
        let ff: [UInt8] = [0xFF, 0xFF, 0xFF, 0xFF]
        #expect(vfs == [2, 0, 0, 0] + [1, 0, 6, 0] + ff + [2, 0, 6, 0, 0xE8, 3, 0, 0] + [4, 0, 4, 0] + ff
                + [0x10, 0, 6, 0] + ff + [0x20, 0, 4, 0] + ff)
        #expect(throws: FWError.self) { try Ext4ACL(disk: [2, 0, 0, 0]) }                  // wrong version
        #expect(throws: FWError.self) { try Ext4ACL(disk: [1, 0, 0, 0, 0x40, 0, 6, 0]) }   // unknown tag
        #expect(throws: FWError.self) { try Ext4ACL(disk: [1, 0, 0, 0, 2, 0, 6, 0, 1]) }   // truncated id
        #expect(throws: FWError.self) { try Ext4ACL(disk: [1, 0]) }                        // no header
    }

    /// Random damage to the metadata of a real image: the reader must fail cleanly (FWError),
    /// never crash or hang, and keep walking past what it cannot read.
    @Test("random metadata damage never crashes", arguments: [UInt64(1), 2, 3, 4, 5, 6])
    func randomDamage(seed: UInt64) throws {
        let image = try FileSource(path: TestImages.path("fs-ext2.img"))
        var rng = Ext4SplitMix(seed)
        // The first 1 MiB of the 1K-block ext2 image holds the superblock copy, group
        // descriptors, bitmaps and the inode table of group 0 (root, /etc, /usr, ...).
        let patches: [(UInt64, [UInt8])] = (0..<500).map { _ in
            (1024 + rng.next() % (1 << 20), [UInt8(truncatingIfNeeded: rng.next())])
        }.filter { $0.0 >= 2048 }   // keep the primary superblock readable, damage everything else
        let reader: Ext4Reader
        do {
            reader = try Ext4Reader(source: Ext4PatchedSource(base: image, patches: patches), name: "damaged")
        } catch is FWError {
            return
        }
        var walk = TreeWalk(reader)
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var entries = 0
        while let entry = walk.next() {
            entries += 1
            guard entry.metadata.type == .regular, entry.metadata.size < 8 << 20 else { continue }
            do {
                let file = try reader.openFile(entry.metadata.inode)
                while try buffer.withUnsafeMutableBytes({ try file.read(into: $0) }) > 0 {}
            } catch is FWError {
                continue
            }
        }
        #expect(entries >= 1)
        // Problems the reader raised name the source (the walk's own, such as invalid names, do not).
        for problem in walk.problems where problem.error.partition != nil {
            #expect(problem.error.disk == "damaged", "\(problem)")
        }
    }
}

/// A small deterministic generator (SplitMix64) so damage is reproducible per seed.
struct Ext4SplitMix {
    private var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
