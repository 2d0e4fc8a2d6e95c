import DiskImage
import Foundation
import PartitionTable
import TestSupport
import Testing

/// The test disks of images/disks, read by PartitionTable and compared with sfdisk, partx and
/// blkid on the same image.
@Suite struct RealDiskTests {
    static let bareDisks = ["bare-fs.img", "bare-vfat.img", "bare-ext2.img", "bare-ext3.img", "bare-swap.img",
                            "bare-f2fs.img", "bare-btrfs.img", "bare-xfs.img"]
    static let tableDisks = ["haos-gpt.img", "haos-mbr.img", "rpi-mbr.img", "hybrid.img", "gpt-bad-primary.img", "sample.img"]

    /// Compares our table with sfdisk's (and partx's for MBR PARTUUIDs), partition by partition.
    func compare(_ table: PartitionTable, with tool: ToolViews.ToolTable, partx: [Int: [String: String]]?) {
        #expect(table.sectorSize == tool.sectorSize)
        #expect(table.partitions.map(\.index) == tool.partitions.map(\.index).sorted())
        if tool.label == "gpt" {
            #expect(table.kind == .gpt || table.kind == .hybrid)
            #expect(table.diskID == tool.id.lowercased())
        } else {
            #expect(tool.label == "dos")
            #expect(table.kind == .mbr)
            #expect(table.diskID.map { "0x" + $0 } == tool.id.lowercased())
        }
        for t in tool.partitions {
            guard let p = table.partitions.first(where: { $0.index == t.index }) else {
                Issue.record("partition \(t.index) missing"); continue
            }
            #expect(p.firstSector == t.start, "partition \(t.index) start")
            #expect(p.sectorCount == t.size, "partition \(t.index) size")
            if tool.label == "gpt" {
                #expect(p.type == t.type.lowercased(), "partition \(t.index) type")
                #expect(p.uuid == t.uuid?.lowercased(), "partition \(t.index) uuid")
                #expect(p.name == (t.name ?? ""), "partition \(t.index) name")
            } else {
                #expect(UInt8(p.type.dropFirst(2), radix: 16) == UInt8(t.type, radix: 16), "partition \(t.index) type")
                #expect(p.bootable == t.bootable, "partition \(t.index) bootable")
                #expect(p.name == nil)
                if let partx {
                    #expect(p.uuid == partx[t.index]?["UUID"], "partition \(t.index) PARTUUID")
                }
            }
        }
    }

    @Test(arguments: tableDisks)
    func tableMatchesSfdisk(_ name: String) throws {
        let path = try TestImages.path(name)
        let table = try PartitionTable.read(from: FileSource(path: path))
        let tool = try ToolViews.sfdisk(path)
        compare(table, with: tool, partx: tool.label == "dos" ? try ToolViews.partx(path) : nil)
    }

    @Test(arguments: tableDisks + ["gpt-4k.img"] + bareDisks)
    func filesystemsMatchBlkid(_ name: String) throws {
        let path = try TestImages.path(name)
        let table = try PartitionTable.read(from: FileSource(path: path))
        let prober = try FilesystemProber(path: path)
        var ranges = table.partitions.map { ($0.index, $0.start, $0.size) }
        if table.kind == .none { ranges = [(1, 0, try FileSource(path: path).size)] }
        #expect(!ranges.isEmpty)
        for (index, start, size) in ranges {
            let ours = try prober.probe(offset: start, size: size)
            let theirs = try ToolViews.blkid(path, offset: start, size: size)
            if table.kind == .none { #expect(ours != nil, "\(name): a bare filesystem is found") }
            #expect(ours?.type == theirs["TYPE"], "\(name) partition \(index) TYPE")
            #expect(ours?.label == theirs["LABEL"], "\(name) partition \(index) LABEL")
            #expect(ours?.uuid == theirs["UUID"], "\(name) partition \(index) UUID")
            #expect(ours?.version == theirs["VERSION"], "\(name) partition \(index) VERSION")
        }
    }

    @Test func haosGPTHasTheFieldGuideLayout() throws {
        let table = try PartitionTable.read(from: FileSource(path: try TestImages.path("haos-gpt.img")))
        #expect(table.kind == .gpt)
        #expect(table.warnings.isEmpty, "\(table.warnings)")
        #expect(table.partitions.map { $0.name ?? "" } == ["hassos-boot", "hassos-kernel0", "hassos-system0", "hassos-kernel1",
                                                          "hassos-system1", "hassos-bootstate", "hassos-overlay", "hassos-data"])
        #expect(table.partitions.first?.typeName == "EFI System")
        #expect(table.partitions.first?.uuid == "b3dd0952-733c-4c88-8cba-cab9b8b4377f")
    }

    @Test func haosMBRNumbersLogicalsFromFive() throws {
        let path = try TestImages.path("haos-mbr.img")
        let table = try PartitionTable.read(from: FileSource(path: path))
        #expect(table.diskID == "48617373")
        #expect(table.warnings.isEmpty, "\(table.warnings)")
        let logicals = table.partitions.filter(\.isLogical)
        #expect(logicals.map(\.index) == [5, 6, 7, 8, 9])
        #expect(logicals.first?.uuid == "48617373-05")
        #expect(table.partitions.first { $0.index == 2 }?.isExtended == true)
        // Each logical has its EBR 1 MiB in front, as in the field guide.
        let raw = try FileSource(path: path)
        for p in logicals {
            let ebr = try raw.bytes(at: p.start - (1 << 20) + 510, count: 2)
            #expect(ebr == [0x55, 0xAA], "EBR in front of partition \(p.index)")
        }
    }

    @Test func hybridIsReportedAndGPTWins() throws {
        let path = try TestImages.path("hybrid.img")
        let table = try PartitionTable.read(from: FileSource(path: path))
        #expect(table.kind == .hybrid)
        #expect(table.partitions.count == 3)
        #expect(table.hybridMBREntries.map(\.type) == ["0x0c"])
        // The MBR's view agrees with sfdisk reading the MBR only.
        let dos = try ToolViews.sfdisk(path)   // sfdisk prefers the GPT on a hybrid disk
        #expect(dos.label == "gpt")
        #expect(table.hybridMBREntries.first?.firstSector == table.partitions.first?.firstSector)
    }

    @Test func corruptPrimaryFallsBackToBackupWithWarning() throws {
        let table = try PartitionTable.read(from: FileSource(path: try TestImages.path("gpt-bad-primary.img")))
        #expect(table.kind == .gpt)
        #expect(table.partitions.count == 2)
        #expect(table.warnings.contains { $0.contains("backup") && $0.contains("CRC") }, "\(table.warnings)")
    }

    @Test func fourKSectorsMatchSfdiskOnA4KLoopDevice() throws {
        let path = try TestImages.path("gpt-4k.img")
        let table = try PartitionTable.read(from: FileSource(path: path))
        #expect(table.sectorSize == 4096)
        #expect(table.partitions.map(\.name) == ["esp", "root"])
        #expect(table.partitions.last?.typeName == "Linux root (ARM-64)")
        let tool = try ToolViews.withLoopDevice(path, sectorSize: 4096) { try ToolViews.sfdisk($0) }
        if let tool { compare(table, with: tool, partx: nil) }
    }

    @Test(arguments: bareDisks)
    func bareFilesystemHasNoTable(_ name: String) throws {
        let table = try PartitionTable.read(from: FileSource(path: try TestImages.path(name)))
        #expect(table.kind == .none)
        #expect(table.partitions.isEmpty)
    }
}
