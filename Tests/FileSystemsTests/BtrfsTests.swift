import DiskImage
@testable import FileSystemBtrfs
import FileSystems
import Foundation
import Testing
import TestSupport

/// The images of images/disks/fs-btrfs.sh: filled by the kernel through a read-write mount.
enum BtrfsFixtures {
    /// Single-device images by their checksum algorithm / layout.
    static let variants = ["fs-btrfs", "fs-btrfs-xxhash", "fs-btrfs-sha256", "fs-btrfs-blake2"]

    static func image(_ name: String) throws -> String { try TestImages.path("\(name).img") }

    /// images/disks/fs-btrfs.sh builds the images only as root with loop devices and the
    /// kernel's btrfs (it writes fs-btrfs.skipped otherwise).
    static var available: Bool { (try? image("fs-btrfs")) != nil }   // missing: the suite skips

    static func open(_ name: String, _ subvolume: BtrfsSubvolume = .default) throws -> BtrfsReader {
        let path = try image(name)
        return try BtrfsReader(source: try FileSource(path: path), name: path, subvolume: subvolume)
    }

    /// The kernel's manifest of `image` mounted read-only with `options` (loop devices set up
    /// by the caller for multi-device filesystems); nil where the kernel cannot mount btrfs.
    static func kernelManifest(_ image: String, options: String = "") throws -> [ManifestEntry]? {
        guard TestImages.canLoopMount("btrfs") else { return nil }
        let mountPoint = FileManager.default.temporaryDirectory.appendingPathComponent("btrfs-test-\(getpid())-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: mountPoint) }
        let loop = String(decoding: try TestImages.run(["losetup", "-f", "--show", "-r", image]), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? TestImages.run(["losetup", "-d", loop]) }   // cleanup: nothing to report
        try TestImages.run(["mount", "-t", "btrfs", "-o", "ro" + (options.isEmpty ? "" : "," + options), loop, mountPoint])
        defer { _ = try? TestImages.run(["umount", mountPoint]) }   // cleanup: nothing to report
        return try Manifest.ofDirectory(mountPoint)
    }

    /// Detaches a loop device set up by a test (a failure is recorded, not thrown from a defer).
    static func detach(_ loop: String) {
        do {
            _ = try TestImages.run(["losetup", "-d", loop])
        } catch {
            Issue.record("losetup -d \(loop): \(error)")
        }
    }

    /// The reader's manifest equals the kernel's, every field.
    static func expectSame(_ reader: BtrfsReader, _ kernel: [ManifestEntry], minimum: Int = 40) throws {
        let (entries, problems) = try Manifest.of(reader)
        #expect(problems.isEmpty, "\(problems)")
        #expect(kernel.count >= minimum)
        let diffs = Manifest.differences(expected: kernel, actual: entries)
        #expect(diffs.isEmpty, "\(diffs.prefix(20).joined(separator: "\n"))")
    }
}

/// Mounting needs exclusive use of a filesystem's fsid (the kernel refuses a second device
/// with the same one), so the kernel comparisons run one at a time.
@Suite("btrfs reader", .serialized, .enabled(if: BtrfsFixtures.available, "fs-btrfs.img not built (needs root, loop devices and btrfs)"))
struct BtrfsReaderTests {
    @Test("the top level (subvolid=5), nested subvolumes included, equals the kernel's mount", arguments: BtrfsFixtures.variants)
    func topLevelMatchesKernel(name: String) throws {
        let reader = try BtrfsFixtures.open(name, .id(5))
        guard let kernel = try BtrfsFixtures.kernelManifest(try BtrfsFixtures.image(name), options: "subvolid=5") else { return }
        try BtrfsFixtures.expectSame(reader, kernel, minimum: 4000)
        #expect(reader.checksumsVerified)
    }

    @Test("without options the default subvolume (set-default) is the root, as the kernel mounts it")
    func defaultSubvolume() throws {
        let reader = try BtrfsFixtures.open("fs-btrfs")
        #expect(try reader.defaultSubvolumeID() == 260)
        #expect(reader.rootSubvolumeID == 260)
        #expect(try reader.lookup("etc-release") != nil)
        guard let kernel = try BtrfsFixtures.kernelManifest(try BtrfsFixtures.image("fs-btrfs")) else { return }
        try BtrfsFixtures.expectSame(reader, kernel, minimum: 3)
    }

    @Test("subvol= by path and subvolid= by id select the subvolume the kernel mounts",
          arguments: [("subvol=subvol", BtrfsSubvolume.path("subvol")), ("subvol=/snap", .path("/snap")),
                      ("subvolid=258", .id(258)), ("subvol=@/.snapshots/1/snapshot", .path("@/.snapshots/1/snapshot"))])
    func selectedSubvolume(option: String, subvolume: BtrfsSubvolume) throws {
        let reader = try BtrfsFixtures.open("fs-btrfs", subvolume)
        guard let kernel = try BtrfsFixtures.kernelManifest(try BtrfsFixtures.image("fs-btrfs"), options: option) else { return }
        try BtrfsFixtures.expectSame(reader, kernel, minimum: 2)
    }

    @Test("a path that is not a subvolume, and a missing id, are refused")
    func badSubvolume() throws {
        #expect(throws: FWError.self) { try BtrfsFixtures.open("fs-btrfs", .path("etc")) }
        #expect(throws: FWError.self) { try BtrfsFixtures.open("fs-btrfs", .path("no/such")) }
        #expect(throws: FWError.self) { try BtrfsFixtures.open("fs-btrfs", .id(999)) }
    }

    @Test("the snapshot keeps the file as it was; nested subvolumes lead into their own tree")
    func snapshotContent() throws {
        let reader = try BtrfsFixtures.open("fs-btrfs", .id(5))
        let old = try #require(try reader.lookup("snap/changed.txt"))
        #expect(String(decoding: try reader.readSmallFile(old), as: UTF8.self) == "before the snapshot\n")
        let new = try #require(try reader.lookup("subvol/changed.txt"))
        #expect(String(decoding: try reader.readSmallFile(new), as: UTF8.self) == "after the snapshot\n")
        let nested = try #require(try reader.lookup("subvol/nested/deep.txt"))
        #expect(String(decoding: try reader.readSmallFile(nested), as: UTF8.self) == "nested\n")
        #expect(try reader.lookup("snap/nested") == nil)
    }

    @Test("RAID1 over two devices: either device alone reads like the kernel's mount of both")
    func raid1() throws {
        let a = try BtrfsFixtures.image("fs-btrfs-raid1-a"), b = try BtrfsFixtures.image("fs-btrfs-raid1-b")
        let readers = try [a, b].map { try BtrfsReader(source: try FileSource(path: $0), name: $0) }
        #expect(readers[0].superBlock.deviceCount == 2)
        guard TestImages.canLoopMount("btrfs") else { return }
        let loopB = String(decoding: try TestImages.run(["losetup", "-f", "--show", "-r", b]), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? TestImages.run(["losetup", "-d", loopB]) }   // cleanup: nothing to report
        let kernel = try #require(try BtrfsFixtures.kernelManifest(a, options: "device=\(loopB)"))
        for reader in readers { try BtrfsFixtures.expectSame(reader, kernel) }
    }

    @Test("superblock mirrors: the 64 MiB copy is checked on a 300 MiB device")
    func mirrors() throws {
        let reader = try BtrfsFixtures.open("fs-btrfs")
        #expect(reader.superBlockCopies.map(\.name) == ["primary", "mirror 1 at 67108864"])
        #expect(reader.superBlockCopies.allSatisfy { $0.status.hasPrefix("ok") }, "\(reader.superBlockCopies)")
    }

    @Test("a damaged primary superblock falls back to the mirror; a damaged tree block is an error naming it")
    func damage() throws {
        let path = try BtrfsFixtures.image("fs-btrfs")
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped).prefix(80 << 20))
        bytes[0x10000 + 0x100] ^= 0xFF
        let reader = try BtrfsReader(source: MemorySource(bytes), name: "damaged")
        #expect(reader.superBlockCopies.first?.status.contains("checksum mismatch") == true)
        // Every copy of the root tree's block damaged (DUP keeps two): the error names the block.
        let root = reader.superBlock.rootTree
        for copy in 0..<2 {
            let physical = try #require(try reader.physicalOffset(root, mirror: copy))
            bytes[Int(physical) + 200] ^= 0xFF
        }
        bytes[0x10000 + 0x100] ^= 0xFF
        #expect {
            _ = try BtrfsReader(source: MemorySource(bytes), name: "damaged")
        } throws: { error in
            "\(error)".contains("tree block at \(root)") && "\(error)".contains("checksum mismatch")
        }
    }

    @Test("each checksum algorithm (crc32c, xxhash64, sha256, blake2b) catches a damaged tree block", arguments: BtrfsFixtures.variants)
    func checksumCatchesDamage(name: String) throws {
        let path = try BtrfsFixtures.image(name)
        var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped).prefix(80 << 20))
        let reader = try BtrfsReader(source: MemorySource(bytes), name: name)
        let root = reader.superBlock.rootTree
        for copy in 0..<2 {
            guard let physical = try reader.physicalOffset(root, mirror: copy) else { continue }   // single metadata: one copy
            bytes[Int(physical) + 300] ^= 0x01
        }
        #expect {
            _ = try BtrfsReader(source: MemorySource(bytes), name: name)
        } throws: { error in
            "\(error)".contains("\(reader.checksumType.name) checksum mismatch")
        }
        // Read without verification, the one-bit change in an item's unused bytes goes unnoticed.
        _ = try? BtrfsReader(source: MemorySource(bytes), name: name, verifyChecksums: false)   // may fail on the damaged item: only the checksum is under test
    }

    @Test("the checksum functions give the reference values")
    func checksumVectors() {
        func hex(_ b: [UInt8]) -> String { b.map { String(format: "%02x", $0) }.joined() }
        #expect(CRC32C.checksum(Array("123456789".utf8)) == 0xE306_9283)
        #expect([UInt8]().withUnsafeBytes { XXHash64.hash($0) } == 0xEF46_DB37_51D8_E999)
        #expect(Array("abc".utf8).withUnsafeBytes { XXHash64.hash($0) } == 0x44BC_2CF5_AD77_0999)
        // python3 hashlib.blake2b(..., digest_size=32)
        #expect(hex(Array("abc".utf8).withUnsafeBytes { BLAKE2b.hash($0) }) == "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319")
        #expect(hex([UInt8]().withUnsafeBytes { BLAKE2b.hash($0) }) == "0e5751c026e543b2e8ab2eb06099daa1d1e5df47778f7787faab45cdf12fe3a8")
        #expect(hex([UInt8](repeating: 0, count: 128).withUnsafeBytes { BLAKE2b.hash($0) }) == "378d0caaaa3855f1b38693c1d6ef004fd118691c95c959d4efa950d6d6fcf7c1")
        let long = (0..<768).map { UInt8($0 % 256) }
        #expect(hex(long.withUnsafeBytes { BLAKE2b.hash($0) }) == "b8007121274217790e2923e0ad7027986e5a99d5531ef6ae7d294140fc81615d")
    }

    @Test("subvolumes() lists what `btrfs subvolume list -a` lists (id and path), the top level first")
    func subvolumeList() throws {
        let reader = try BtrfsFixtures.open("fs-btrfs")
        let listed = try String(contentsOfFile: try TestImages.path("fs-btrfs.info"), encoding: .utf8)
            .split(separator: "\n").compactMap { line -> String? in
                // "ID 256 gen 12 parent 5 top level 5 path <FS_TREE>/subvol"
                let words = line.split(separator: " ")
                guard words.count >= 9, let path = line.range(of: " path <FS_TREE>/") else { return nil }
                return "\(words[1]) \(line[path.upperBound...])"
            }
        let mine = try reader.subvolumes()
        #expect(mine.first?.id == 5 && mine.first?.path == "")
        #expect(mine.dropFirst().map { "\($0.id) \($0.path)" } == listed)
        #expect(mine.filter(\.isDefault).map(\.path) == ["@/.snapshots/1/snapshot"])
        #expect(mine.filter(\.isReadOnly).map(\.path) == ["snap"])
    }

    @Test("RAID5 over three devices: each file's data stripe is read from the device that holds it, equal to the kernel's")
    func raid5() throws {
        let paths = try ["a", "b", "c"].map { try BtrfsFixtures.image("fs-btrfs-raid5-\($0)") }
        let readers = try paths.map { try BtrfsReader(source: try FileSource(path: $0), name: $0) }
        guard TestImages.canLoopMount("btrfs") else { return }
        let loops = try paths.dropFirst().map {
            String(decoding: try TestImages.run(["losetup", "-f", "--show", "-r", $0]), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        defer { for loop in loops { _ = try? TestImages.run(["losetup", "-d", loop]) } }   // cleanup: nothing to report
        let kernel = try #require(try BtrfsFixtures.kernelManifest(paths[0], options: loops.map { "device=\($0)" }.joined(separator: ",")))
        let files = kernel.filter { $0.type == "regular" && $0.path.hasPrefix("files/") }
        #expect(files.count == 60)
        var readFrom = [0, 0, 0]
        for file in files {
            var found = false
            for (index, reader) in readers.enumerated() {
                guard let inode = try reader.lookup(file.path), let bytes = try? reader.readSmallFile(inode) else { continue }   // on another device
                #expect(bytes.count == 4096 && CRC32.checksum(bytes) == file.crc32, "\(file.path) from device \(index)")
                readFrom[index] += 1
                found = true
                break
            }
            #expect(found, "\(file.path) read from no device")
        }
        // The data stripes rotate over all three devices.
        #expect(readFrom.allSatisfy { $0 > 0 }, "\(readFrom)")
    }

    @Test("RAID5 over three devices read as one filesystem: all three equal the kernel's mount; any two rebuild the third's stripes from parity")
    func raid5AllDevices() throws {
        let paths = try ["a", "b", "c"].map { try BtrfsFixtures.image("fs-btrfs-raid5-\($0)") }
        func open(_ chosen: [String]) throws -> BtrfsReader {
            try BtrfsReader(source: try FileSource(path: chosen[0]), name: chosen[0],
                            devices: try chosen.dropFirst().map { BtrfsDevice(source: try FileSource(path: $0), name: $0) })
        }
        let all = try open(paths.reversed())
        #expect(all.devices.map(\.id) == [1, 2, 3] && all.ignoredDevices.isEmpty)
        guard TestImages.canLoopMount("btrfs") else { return }
        let loops = try paths.dropFirst().map {
            String(decoding: try TestImages.run(["losetup", "-f", "--show", "-r", $0]), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        defer { loops.forEach(BtrfsFixtures.detach) }
        let kernel = try #require(try BtrfsFixtures.kernelManifest(paths[0], options: loops.map { "device=\($0)" }.joined(separator: ",")))
        try BtrfsFixtures.expectSame(all, kernel)
        let files = kernel.filter { $0.type == "regular" && $0.path.hasPrefix("files/") }
        #expect(files.count == 60)
        for missing in paths.indices {
            let reader = try open(paths.enumerated().filter { $0.offset != missing }.map(\.element))
            for file in files {
                let inode = try #require(try reader.lookup(file.path))
                let contents = try reader.openFile(inode)
                let bytes = try contents.readPrefix(Int(contents.size))
                #expect(bytes.count == 4096 && CRC32.checksum(bytes) == file.crc32, "\(file.path) without device \(missing + 1)")
                #expect(contents.warnings.isEmpty, "\(file.path): \(contents.warnings)")
            }
        }
    }

    @Test("RAID6 over four devices: all four equal the kernel's mount; any two rebuild the others' stripes from P, Q or both")
    func raid6AllDevices() throws {
        let paths = try ["a", "b", "c", "d"].map { try BtrfsFixtures.image("fs-btrfs-raid6-\($0)") }
        func open(_ chosen: [String]) throws -> BtrfsReader {
            try BtrfsReader(source: try FileSource(path: chosen[0]), name: chosen[0],
                            devices: try chosen.dropFirst().map { BtrfsDevice(source: try FileSource(path: $0), name: $0) })
        }
        guard TestImages.canLoopMount("btrfs") else { return }
        let loops = try paths.dropFirst().map {
            String(decoding: try TestImages.run(["losetup", "-f", "--show", "-r", $0]), as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        }
        defer { loops.forEach(BtrfsFixtures.detach) }
        let kernel = try #require(try BtrfsFixtures.kernelManifest(paths[0], options: loops.map { "device=\($0)" }.joined(separator: ",")))
        try BtrfsFixtures.expectSame(try open(paths), kernel, minimum: 60)
        let files = kernel.filter { $0.type == "regular" && $0.path.hasPrefix("files/") }
        #expect(files.count == 61)
        for first in paths.indices {
            for second in paths.indices where second > first {
                let reader = try open(paths.enumerated().filter { $0.offset != first && $0.offset != second }.map(\.element))
                for file in files {
                    let contents = try reader.openFile(try #require(try reader.lookup(file.path)))
                    let bytes = try contents.readPrefix(Int(contents.size))
                    #expect(UInt64(bytes.count) == file.size && CRC32.checksum(bytes) == file.crc32, "\(file.path) without devices \(first + 1), \(second + 1)")
                    #expect(contents.warnings.isEmpty, "\(file.path): \(contents.warnings)")
                }
            }
        }
    }

    @Test("RAID1 given both devices: the kernel's mount of both; the device ids and names are listed")
    func raid1BothDevices() throws {
        let a = try BtrfsFixtures.image("fs-btrfs-raid1-a"), b = try BtrfsFixtures.image("fs-btrfs-raid1-b")
        let reader = try BtrfsReader(source: try FileSource(path: a), name: a, devices: [BtrfsDevice(source: try FileSource(path: b), name: b)])
        #expect(reader.devices.map(\.name) == [a, b])
        guard TestImages.canLoopMount("btrfs") else { return }
        let loopB = String(decoding: try TestImages.run(["losetup", "-f", "--show", "-r", b]), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        defer { BtrfsFixtures.detach(loopB) }
        try BtrfsFixtures.expectSame(reader, try #require(try BtrfsFixtures.kernelManifest(a, options: "device=\(loopB)")))
    }
}
