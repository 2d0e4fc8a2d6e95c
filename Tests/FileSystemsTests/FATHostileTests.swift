import DiskImage
import FileSystems
@testable import FileSystemFAT
import Foundation
import Testing
import TestSupport

/// Damaged copies of fs-fat12.img, fs-fat16.img and fs-fat32.img, patched in memory: every damage must give a
/// clear FWError naming the path, the rest of the tree must still be listed, nothing may hang.
enum FATDamage {
    static func bytes(_ image: String) throws -> [UInt8] {
        [UInt8](try Data(contentsOf: URL(fileURLWithPath: try TestImages.path(image))))
    }

    static func reader(_ bytes: [UInt8]) throws -> FATReader {
        try FATReader(source: MemorySource(bytes, name: "damaged"), name: "damaged")
    }

    /// Sets the FAT entry of `cluster` to `value` in every copy of the FAT.
    static func setLink(_ bytes: inout [UInt8], boot: FAT.BootSector, cluster: UInt32, to value: UInt32) {
        for copy in 0..<UInt64(boot.fatCount) {
            let base = Int(boot.fatOffset + copy * boot.fatBytes)
            switch boot.kind {
            case .fat16:
                let o = base + Int(cluster) * 2
                bytes[o] = UInt8(value & 0xFF); bytes[o + 1] = UInt8(value >> 8 & 0xFF)
            case .fat32:
                let o = base + Int(cluster) * 4
                for i in 0..<4 { bytes[o + i] = UInt8(value >> (8 * UInt32(i)) & 0xFF) }
            case .fat12:
                // Two entries share three bytes: an odd cluster holds the high 12 bits.
                let v = value & 0xFFF
                let o = base + Int(cluster) + Int(cluster) / 2
                if cluster & 1 == 1 {
                    bytes[o] = bytes[o] & 0x0F | UInt8(v << 4 & 0xF0); bytes[o + 1] = UInt8(v >> 4)
                } else {
                    bytes[o] = UInt8(v & 0xFF); bytes[o + 1] = bytes[o + 1] & 0xF0 | UInt8(v >> 8)
                }
            }
        }
    }

    /// The clusters of an entry's chain, read with the undamaged image.
    static func chain(_ reader: FATReader, _ path: String) throws -> (inode: UInt64, clusters: [UInt32]) {
        let inode = try #require(try reader.lookup(path))
        let first = try reader.shortEntry(at: inode).firstCluster(reader.kind)
        var chain = try ClusterChain(reader: reader, first: first)
        var clusters: [UInt32] = []
        while let c = try chain.next() { clusters.append(c) }
        return (inode, clusters)
    }

    /// Walks everything and reads every file; returns the paths seen and the errors met
    /// (from the walk and from reading), as "path: message".
    static func walkAll(_ reader: FATReader) -> (paths: Set<String>, errors: [String]) {
        var walk = TreeWalk(reader)
        var paths = Set<String>()
        var errors: [String] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while let entry = walk.next() {
            paths.insert(entry.displayPath)
            guard entry.metadata.type == .regular else { continue }
            do {
                let file = try reader.openFile(entry.metadata.inode)
                while try buffer.withUnsafeMutableBytes({ try file.read(into: $0) }) > 0 {}
            } catch let error as FWError {
                errors.append(error.description)
            } catch {
                errors.append("\(entry.displayPath): \(error)")
            }
        }
        errors += walk.problems.map { "\($0.path): \($0.error.message)" }
        return (paths, errors)
    }
}

@Suite("FAT reader on damaged images")
struct FATHostileTests {
    @Test("a bad boot sector is refused with a message naming the field")
    func badBootSector() throws {
        let good = try FATDamage.bytes("fs-fat16.img")
        let cases: [(String, (inout [UInt8]) -> Void)] = [
            ("bytes per sector", { $0[11] = 0x00; $0[12] = 0x03 }),       // 768
            ("bytes per sector", { $0[11] = 0x00; $0[12] = 0x20 }),       // 8192
            ("sectors per cluster", { $0[13] = 3 }),
            ("sectors per cluster", { $0[13] = 0 }),
            ("reserved sector count", { $0[14] = 0; $0[15] = 0 }),
            ("number of FATs", { $0[16] = 0 }),
            ("media descriptor", { $0[21] = 0x12 }),
            ("total sector count", { $0[19] = 0; $0[20] = 0; for i in 32..<36 { $0[i] = 0 } }),
            ("past the", { $0[19] = 0x10; $0[20] = 0; for i in 32..<36 { $0[i] = 0 } }),   // 16 sectors
            ("cannot hold", { $0[22] = 1; $0[23] = 0 }),                  // 1-sector FAT
            ("no root directory entries", { $0[17] = 0; $0[18] = 0 }),
            ("bytes per sector", { for i in 0..<512 { $0[i] = 0 } }),
        ]
        for (fragment, patch) in cases {
            var bytes = Array(good.prefix(1 << 20))
            patch(&bytes)
            let error = #expect(throws: FWError.self) { try FATDamage.reader(bytes) }
            #expect(error?.code == .corrupt, "\(fragment)")
            #expect(error?.message.contains(fragment) == true, "\(fragment): \(String(describing: error))")
            #expect(error?.disk == "damaged")
        }
        // Too small to hold a boot sector, and a FAT past the end of the source.
        #expect(throws: FWError.self) { try FATDamage.reader(Array(good.prefix(100))) }
        #expect(throws: FWError.self) { try FATDamage.reader(Array(good.prefix(2048))) }
    }

    @Test("a FAT chain that loops: a clear error naming the file, the walk goes on", arguments: ["fs-fat12.img", "fs-fat16.img", "fs-fat32.img"])
    func loopingChain(image: String) throws {
        var bytes = try FATDamage.bytes(image)
        let clean = try FATDamage.reader(bytes)
        let (_, clusters) = try FATDamage.chain(clean, "big.bin")
        #expect(clusters.count > 20)
        // The 20th cluster leads back to the 5th.
        FATDamage.setLink(&bytes, boot: clean.bootSector, cluster: clusters[19], to: clusters[4])
        let damaged = try FATDamage.reader(bytes)
        let inode = try #require(try damaged.lookup("big.bin"))
        let error = #expect(throws: FWError.self) { try damaged.openFile(inode) }
        #expect(error?.message.contains("loops") == true, "\(String(describing: error))")
        #expect(error?.path == "/big.bin")
        let (paths, errors) = FATDamage.walkAll(damaged)
        #expect(paths == FATDamage.walkAll(clean).paths)
        #expect(errors.count == 1 && errors[0].contains("/big.bin"), "\(errors)")
    }

    @Test("a cluster number past the end of the volume, and a chain too short for the size", arguments: ["fs-fat12.img", "fs-fat16.img", "fs-fat32.img"])
    func outOfRangeAndShort(image: String) throws {
        var bytes = try FATDamage.bytes(image)
        let clean = try FATDamage.reader(bytes)
        let (_, big) = try FATDamage.chain(clean, "big.bin")
        let (fragInode, frag) = try FATDamage.chain(clean, "frag/c-fragmented.bin")
        let past = clean.bootSector.lastCluster + 1
        FATDamage.setLink(&bytes, boot: clean.bootSector, cluster: big[2], to: past)
        FATDamage.setLink(&bytes, boot: clean.bootSector, cluster: frag[frag.count / 2], to: 0x0FFF_FFFF)   // end of chain early
        // A file whose first cluster is past the end: nested/level1/one.txt.
        let oneInode = try #require(try clean.lookup("nested/level1/one.txt"))
        let low = Int(oneInode) + 26
        bytes[low] = 0xFF; bytes[low + 1] = 0xFF
        if clean.kind == .fat32 { bytes[low - 6] = 0xFF; bytes[low - 5] = 0x0F }
        let damaged = try FATDamage.reader(bytes)
        let (paths, errors) = FATDamage.walkAll(damaged)
        #expect(paths == FATDamage.walkAll(clean).paths)
        #expect(errors.count == 3, "\(errors)")
        #expect(errors.contains { $0.contains("/big.bin") && $0.contains("points to \(past)") }, "\(errors)")
        #expect(errors.contains { $0.contains("/frag/c-fragmented.bin") && $0.contains("ends after") }, "\(errors)")
        #expect(errors.contains { $0.contains("/nested/level1/one.txt") && $0.contains("outside") }, "\(errors)")
        #expect(throws: FWError.self) { try damaged.openFile(fragInode) }
    }

    @Test("a directory whose cluster points at itself (in the FAT, or as its own subdirectory)", arguments: ["fs-fat12.img", "fs-fat16.img", "fs-fat32.img"])
    func selfReferencingDirectory(image: String) throws {
        var bytes = try FATDamage.bytes(image)
        let clean = try FATDamage.reader(bytes)
        let (_, many) = try FATDamage.chain(clean, "many")
        #expect(many.count >= 2)
        // many/: its second cluster's FAT entry points at itself.
        FATDamage.setLink(&bytes, boot: clean.bootSector, cluster: many[1], to: many[1])
        // nested/level1/level2: its first cluster becomes nested/level1's, so it lists its parent
        // (which contains it) again.
        let (level2Inode, _) = try FATDamage.chain(clean, "nested/level1/level2")
        let (_, level1) = try FATDamage.chain(clean, "nested/level1")
        bytes[Int(level2Inode) + 26] = UInt8(level1[0] & 0xFF)
        bytes[Int(level2Inode) + 27] = UInt8(level1[0] >> 8 & 0xFF)
        bytes[Int(level2Inode) + 20] = UInt8(level1[0] >> 16 & 0xFF)
        bytes[Int(level2Inode) + 21] = UInt8(level1[0] >> 24 & 0xFF)
        let damaged = try FATDamage.reader(bytes)
        let (paths, errors) = FATDamage.walkAll(damaged)
        #expect(errors.contains { $0.contains("/many") && $0.contains("loops") }, "\(errors)")
        #expect(errors.contains { $0.contains("/nested/level1/level2/level2") && $0.contains("contains itself") }, "\(errors)")
        #expect(errors.count == 2, "\(errors)")
        #expect(paths.contains("/many") && !paths.contains { $0.hasPrefix("/many/") })
        #expect(paths.contains("/nested/level1/level2/one.txt"))
        #expect(paths.contains("/big.bin") && paths.contains("/frag/c-fragmented.bin"))
    }

    @Test("a free (0x00) record in the middle of a directory hides only itself, as in Linux")
    func freeRecordInTheMiddle() throws {
        var bytes = try FATDamage.bytes("fs-fat32.img")
        let clean = try FATDamage.reader(bytes)
        let inode = try #require(try clean.lookup("many/entry-with-a-long-name-10.txt"))
        bytes[Int(inode)] = 0x00
        let damaged = try FATDamage.reader(bytes)
        let many = try #require(try damaged.lookup("many"))
        let names = Set(try damaged.directoryEntries(of: many).map { String(decoding: $0.name, as: UTF8.self) })
        #expect(names.count == 89)
        #expect(!names.contains("entry-with-a-long-name-10.txt"))
        #expect(names.contains("entry-with-a-long-name-11.txt") && names.contains("entry-with-a-long-name-90.txt"))
    }

    @Test("a long name whose checksum does not match its short entry falls back to the 8.3 name")
    func badLongNameChecksum() throws {
        var bytes = try FATDamage.bytes("fs-fat16.img")
        let clean = try FATDamage.reader(bytes)
        let inode = try #require(try clean.lookup("MixedCase.Txt"))
        let short = try clean.shortEntry(at: inode)
        let slot = Int(inode) - 32
        #expect(bytes[slot + 11] == 0x0F && bytes[slot + 13] == short.checksum)
        bytes[slot + 13] &+= 1
        let damaged = try FATDamage.reader(bytes)
        #expect(try damaged.lookup("MixedCase.Txt") == nil)
        #expect(try damaged.lookup(short.displayName) == inode)
        #expect(short.displayName == "MIXEDC~1.TXT")
    }
}
