import DiskImage
@testable import FileSystemF2FS
import FileSystems
import Foundation
import Testing
import TestSupport

/// The images of images/disks/fs-f2fs.sh, made by mkfs.f2fs + sload.f2fs (f2fs-tools 1.15)
/// from one source tree. No kernel here mounts f2fs: the source tree is the reference, on the
/// fields sload.f2fs writes (regular files, directories and symlinks with their permission bits,
/// owners, mtime seconds, contents, targets and hardlinks; it skips devices, FIFOs and sockets,
/// writes no xattrs from the tree and no nanoseconds, and stamps the root with the load time).
enum F2FSFixtures {
    static let variants = ["fs-f2fs", "fs-f2fs-plain", "fs-f2fs-flexible"]

    static func open(_ name: String) throws -> F2FSReader {
        let path = try TestImages.path("\(name).img")
        return try F2FSReader(source: try FileSource(path: path), name: path)
    }

    /// The source tree's manifest as sload.f2fs can express it.
    static func expected() throws -> [ManifestEntry] {
        let all = try Manifest.load("fs-f2fs.manifest")
        return all.filter { ["regular", "directory", "symlink"].contains($0.type) }.map {
            var e = $0
            if e.path == "." { e.mtime = 0 }
            return e
        }
    }
}

@Suite("f2fs reader")
struct F2FSReaderTests {
    @Test("every field sload.f2fs writes matches the source tree", arguments: F2FSFixtures.variants)
    func matchesSource(name: String) throws {
        let reader = try F2FSFixtures.open(name)
        let (entries, problems) = try Manifest.of(reader)
        #expect(problems.isEmpty, "\(problems)")
        var expected = try F2FSFixtures.expected()
        #expect(expected.count > 3000)
        if name == "fs-f2fs-flexible" {
            // sload.f2fs 1.15's own fsck pass re-sizes the inline xattr area after the load
            // (images/disks/fs-f2fs.sh): the large file's later blocks are not its source's.
            expected.removeAll { $0.path == "var/large.bin" }
            #expect(entries.contains { $0.path == "var/large.bin" && $0.size == 24 << 20 })
        }
        let actual = Manifest.withoutRootTime(entries)
        let diffs = Manifest.differences(expected: expected, actual: actual.filter { name != "fs-f2fs-flexible" || $0.path != "var/large.bin" },
                                         ignoring: [.mtimeNanoseconds, .xattrs])
        #expect(diffs.isEmpty, "\(diffs.prefix(20).joined(separator: "\n"))")
        // Hardlinks: one node id for the three names of busybox.
        let busybox = try #require(try reader.lookup("/usr/bin/busybox"))
        #expect(try reader.lookup("/bin/sh") == busybox)
        #expect(try reader.metadata(of: busybox).linkCount == 3)
    }

    @Test("superblock, checkpoint and features as mkfs.f2fs wrote them")
    func superBlock() throws {
        let reader = try F2FSFixtures.open("fs-f2fs")
        #expect(reader.superBlock.volumeName == "fs-f2fs")
        #expect(reader.superBlock.uuid == [0x0a, 0x0b, 0x0c, 0x0d, 0xf2, 0xf5, 0x42, 0x22, 0x83, 0x33, 0x44, 0x44, 0x55, 0x55, 0x66, 0x66])
        for feature: F2FS.Features in [.extraAttributes, .inodeChecksum, .superBlockChecksum, .inodeCreationTime, .projectQuota, .quotaInode] {
            #expect(reader.features.contains(feature), "\(feature)")
        }
        #expect(reader.features.description.contains("sb_checksum"))
        #expect(reader.superBlockCopy == 0)
        let plain = try F2FSFixtures.open("fs-f2fs-plain")
        #expect(plain.features.isEmpty || !plain.features.contains(.extraAttributes))
    }

    @Test("inline data, inline dentries, multi-level dentry blocks and indirect nodes are all exercised", arguments: F2FSFixtures.variants)
    func layouts(name: String) throws {
        let reader = try F2FSFixtures.open(name)
        func details(_ path: String) throws -> F2FS.Inode {
            try reader.inodeDetails(try #require(try reader.lookup(path), "\(path)"))
        }
        // sload.f2fs stores small files inline (directories never as inline dentries).
        #expect(try details("/etc/inline-3000").usesInlineData)
        #expect(try !details("/etc/block-4000").usesInlineData)
        #expect(try !details("/etc/small").usesInlineDentries)
        #expect(try reader.directoryEntries(of: UInt64(details("/etc/small").nid)).count == 3)
        let many = try details("/usr/share/many")
        #expect(!many.usesInlineDentries)
        #expect(many.currentDepth > 1, "3000 entries need several hash levels, got depth \(many.currentDepth)")
        #expect(try reader.directoryEntries(of: UInt64(many.nid)).count == 3000)
        // 24 MiB: past the 923 + 2 x 1018 blocks of the inode and its direct nodes.
        let large = try details("/var/large.bin")
        #expect(large.size == 24 << 20)
        #expect(large.nids[2] != 0, "the file uses its first indirect node")
    }

    @Test("extra attributes: creation time and project id are read from i_extra_isize")
    func extraAttributes() throws {
        let reader = try F2FSFixtures.open("fs-f2fs")
        let ino = try reader.inodeDetails(try #require(try reader.lookup("/etc/passwd")))
        #expect(ino.extraSize >= 24)
        #expect(ino.projectID == 0)
        #expect(ino.creationTime != nil)
        let plain = try F2FSFixtures.open("fs-f2fs-plain")
        let old = try plain.inodeDetails(try #require(try plain.lookup("/etc/passwd")))
        #expect(old.extraSize == 0 && old.creationTime == nil)
        #expect(old.inlineXattrWords == 50, "the 200-byte default inline xattr area of inline-xattr inodes")
        let flexible = try F2FSFixtures.open("fs-f2fs-flexible")
        #expect(flexible.features.contains(.flexibleInlineXattr))
        #expect(try flexible.inodeDetails(try #require(try flexible.lookup("/etc/passwd"))).inlineXattrWords == 50)
    }

    @Test("a damaged first superblock falls back to the second; both damaged is an error naming the image")
    func superBlockCopies() throws {
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("f2fs-sb-\(UUID().uuidString).img").path
        defer { try? FileManager.default.removeItem(atPath: copy) }   // scratch copy: a failed removal leaves only a temporary file
        try FileManager.default.copyItem(atPath: try TestImages.path("fs-f2fs.img"), toPath: copy)
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: copy))
        try handle.seek(toOffset: 1024 + 200)
        try handle.write(contentsOf: Data([0xFF, 0xFF]))   // inside the CRC-covered volume name
        try handle.synchronize()
        let reader = try F2FSReader(source: try FileSource(path: copy), name: copy)
        #expect(reader.superBlockCopy == 1)
        try handle.seek(toOffset: 4096 + 1024)
        try handle.write(contentsOf: Data([0, 0, 0, 0]))
        try handle.close()
        #expect {
            _ = try F2FSReader(source: try FileSource(path: copy), name: copy)
        } throws: { error in
            "\(error)".contains(copy) && "\(error)".contains("CRC")
        }
    }
}

/// f2fs images Linux itself wrote (images/disks/fs-f2fs-kernel.sh: Debian's kernel under QEMU
/// copied the source tree in with `cp -a`, then deleted and renamed entries, with lz4, lzo or
/// zstd compression of *.txt files): every field of every entry equals the source tree's after
/// the same changes, nanoseconds, xattrs, devices, FIFOs, sockets and hardlinks included.
@Suite("f2fs reader: kernel-written images", .enabled(if: F2FSKernelFixtures.available, "no kernel-written f2fs image (fs-f2fs-kernel.skipped says why)"))
struct F2FSKernelTests {
    @Test("every field matches the source tree after the guest's deletes and renames", arguments: F2FSKernelFixtures.variants)
    func matchesSource(variant: (name: String, algorithm: F2FS.Algorithm)) throws {
        let reader = try F2FSFixtures.open(variant.name)
        let (entries, problems) = try Manifest.of(reader)
        #expect(problems.isEmpty, "\(problems)")
        let expected = try Manifest.load("fs-f2fs-kernel.manifest")
        #expect(expected.count > 2500)
        let diffs = Manifest.differences(expected: Manifest.withoutRootTime(expected), actual: Manifest.withoutRootTime(entries))
        #expect(diffs.isEmpty, "\(diffs.prefix(20).joined(separator: "\n"))")
        #expect(!entries.contains { $0.path == "etc/delete-me" || $0.path == "etc/rename-me" || $0.path.hasPrefix("srv/olddir") })
        #expect(entries.contains { $0.path == "srv/newdir/inner/file" } && entries.contains { $0.path == "etc/renamed" })
    }

    @Test("the kernel's layouts are all there: compressed clusters, holes, inline dentries, an xattr node, new-encoding devices", arguments: F2FSKernelFixtures.variants)
    func layouts(variant: (name: String, algorithm: F2FS.Algorithm)) throws {
        let reader = try F2FSFixtures.open(variant.name)
        func details(_ path: String) throws -> F2FS.Inode {
            try reader.inodeDetails(try #require(try reader.lookup(path), "\(path)"))
        }
        for name in ["large.txt", "medium.txt", "mixed.txt"] {
            let ino = try details("/usr/share/doc/\(name)")
            #expect(ino.isCompressed && ino.compressionAlgorithm == variant.algorithm.rawValue, "\(name)")
            #expect(ino.blocks * 512 < ino.size, "\(name): some clusters compressed")
        }
        #expect(try !details("/etc/passwd").isCompressed)
        let holes = try details("/var/holes.img")
        #expect(holes.size == 24 << 20 && holes.blocks * 512 < 1 << 20, "sparse: \(holes.blocks) sectors")
        #expect(try details("/etc/small").usesInlineDentries)
        #expect(try details("/etc/passwd").xattrNid != 0, "user.big does not fit inline")
        #expect(try details("/etc/hostname").usesInlineData)
        let many = try details("/usr/share/many")
        #expect(!many.usesInlineDentries && many.currentDepth > 1)
    }
}

extension F2FSKernelTests {
    @Test("not checkpointed: the last checkpoint's state is read (no roll-forward), and the reader says so")
    func notCheckpointed() throws {
        let reader = try F2FSFixtures.open("fs-f2fs-kernel-fsync")
        #expect(!reader.wasCleanlyUnmounted)
        #expect(try F2FSFixtures.open("fs-f2fs-kernel").wasCleanlyUnmounted)
        let (entries, problems) = try Manifest.of(reader)
        #expect(problems.isEmpty, "\(problems)")
        // Written and synced before the power cut: there, as the checkpoint has them. The rename
        // after it is lost (as Linux loses it: nothing persisted it). The fsync'd overwrite went
        // in place (f2fs's IPU on fsync), so the checkpoint's block holds the new bytes, which
        // is also what Linux shows after its roll-forward; data that fsync appends to new
        // blocks would not be seen (docs/readers-f2fs.md).
        #expect(entries.map(\.path).sorted() == [".", "d", "d/checkpointed", "d/old-name"], "\(entries.map(\.path))")
        let file = try #require(entries.first { $0.path == "d/checkpointed" })
        var expected = Array("FSYNCED-ONLY\n".utf8)
        expected += [UInt8](repeating: 0, count: 16384 - expected.count)
        #expect(file.size == 16384 && file.crc32 == CRC32.checksum(expected))
    }
}

enum F2FSKernelFixtures {
    static let variants: [(name: String, algorithm: F2FS.Algorithm)] = [
        ("fs-f2fs-kernel", .lz4), ("fs-f2fs-kernel-lzo", .lzo), ("fs-f2fs-kernel-zstd", .zstd),
    ]
    static var available: Bool { (try? TestImages.path("fs-f2fs-kernel.img")) != nil }   // absent: the suite is skipped
}

/// Damaged copies of fs-f2fs.img: every damage is an FWError naming the image (and, for one
/// file, its path in the walk), never a crash; the rest of the tree is still read.
@Suite("f2fs reader: damaged images")
struct F2FSDamageTests {
    static func damagedCopy(_ edits: (F2FSReader, FileHandle) throws -> Void) throws -> String {
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("f2fs-damage-\(UUID().uuidString).img").path
        try FileManager.default.copyItem(atPath: try TestImages.path("fs-f2fs.img"), toPath: copy)
        let reader = try F2FSReader(source: try FileSource(path: copy), name: copy)
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: copy))
        try edits(reader, handle)
        try handle.close()
        return copy
    }

    static func write(_ handle: FileHandle, block: UInt32, offset: Int, _ bytes: [UInt8]) throws {
        try handle.seek(toOffset: UInt64(block) * 4096 + UInt64(offset))
        try handle.write(contentsOf: Data(bytes))
    }

    @Test("both checkpoint packs damaged: no valid checkpoint, named with the image")
    func checkpoints() throws {
        let copy = try Self.damagedCopy { reader, handle in
            for pack in 0..<2 { try Self.write(handle, block: reader.superBlock.checkpointAddress + UInt32(pack) * 512, offset: 8, [0xFF]) }
        }
        defer { try? FileManager.default.removeItem(atPath: copy) }   // scratch copy: a failed removal leaves only a temporary file
        #expect {
            _ = try F2FSReader(source: try FileSource(path: copy), name: copy)
        } throws: { error in
            "\(error)".contains(copy) && "\(error)".contains("no valid checkpoint")
        }
    }

    @Test("a file's inode with a bad checksum, and a directory whose node points outside the main area: errors for those paths, the walk goes on")
    func nodes() throws {
        var hostnameNid: UInt32 = 0
        let copy = try Self.damagedCopy { reader, handle in
            hostnameNid = UInt32(try #require(try reader.lookup("/etc/hostname")))
            try Self.write(handle, block: try reader.natEntry(hostnameNid).address, offset: 16, [0x77])   // i_size, under the CRC
            let small = UInt32(try #require(try reader.lookup("/etc/small")))
            // the directory's first data block address, pointed at block 1 (the superblock copy)
            let ino = try reader.inode(small)
            try Self.write(handle, block: try reader.natEntry(small).address, offset: ino.addressOffset, [1, 0, 0, 0])
            // its inode checksum, recomputed so that only the address is wrong
            var block = ino.block
            block[ino.addressOffset..<(ino.addressOffset + 4)] = [1, 0, 0, 0]
            let crc = try F2FS.Inode(nid: small, block: block, features: reader.features).checksum(seed: try #require(reader.checksumSeed))
            try Self.write(handle, block: try reader.natEntry(small).address, offset: 368,
                           [UInt8(crc & 0xFF), UInt8((crc >> 8) & 0xFF), UInt8((crc >> 16) & 0xFF), UInt8(crc >> 24)])
        }
        defer { try? FileManager.default.removeItem(atPath: copy) }   // scratch copy: a failed removal leaves only a temporary file
        let reader = try F2FSReader(source: try FileSource(path: copy), name: copy)
        #expect {
            _ = try reader.metadata(of: UInt64(hostnameNid))
        } throws: { error in
            "\(error)".contains(copy) && "\(error)".contains("inode checksum mismatch")
        }
        let (entries, problems) = try Manifest.of(reader)
        #expect(problems.contains { "\($0)".contains("etc/hostname") }, "\(problems)")
        #expect(problems.contains { "\($0)".contains("etc/small") && "\($0)".contains("outside the main area") }, "\(problems)")
        #expect(entries.count > 3000, "the rest is read")
    }
}

