import FirmwareAssembler
import Foundation
import TestSupport
import Testing

/// `inspect --json` through the facade and through the built binary, checked against sfdisk and
/// blkid on the same image for every partition; errors and exit codes of the CLI.
@Suite struct InspectTests {
    static let disks = ["haos-gpt.img", "haos-mbr.img", "rpi-mbr.img", "hybrid.img", "gpt-4k.img",
                        "gpt-bad-primary.img", "bare-fs.img", "bare-vfat.img", "bare-ext2.img", "bare-ext3.img",
                        "bare-swap.img", "bare-f2fs.img", "bare-btrfs.img", "bare-xfs.img", "sample.img"]

    /// The JSON document as a generic object, so the test reads the key contract, not our types.
    static func document(_ json: String) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
    }

    /// Checks the contract's keys and compares every partition with sfdisk and blkid.
    static func checkAgainstTools(_ doc: [String: Any], image path: String) throws {
        let image = try #require(doc["image"] as? [String: Any])
        let table = try #require(doc["table"] as? [String: Any])
        let parts = try #require(doc["partitions"] as? [[String: Any]])
        #expect(image["path"] as? String == path)
        let size = try #require((image["size"] as? NSNumber)?.uint64Value)
        #expect(size == (try FileManager.default.attributesOfItem(atPath: path)[.size] as? NSNumber)?.uint64Value)
        let sectorSize = try #require(image["sector_size"] as? Int)
        let type = try #require(table["type"] as? String)
        #expect(["gpt", "mbr", "hybrid", "none"].contains(type))
        #expect(table["warnings"] is [Any])
        #expect(table.keys.contains("disk_id"))
        for p in parts {
            for key in ["index", "start", "size", "type", "type_name", "name", "uuid", "bootable", "filesystem"] {
                #expect(p.keys.contains(key), "partition key \(key)")
            }
        }

        // Partition table: sfdisk (on a 4K loop device for 4096-byte sectors).
        if type == "none" {
            // sfdisk finds no partitions (on a bare FAT volume it reports an empty "dos" table).
            let none = try? ToolViews.sfdisk(path)
            #expect(none?.partitions.isEmpty ?? true)
            #expect(parts.count == 1)
            #expect((parts.first?["start"] as? NSNumber)?.uint64Value == 0)
            #expect((parts.first?["size"] as? NSNumber)?.uint64Value == size)
        } else {
            let tool: ToolViews.ToolTable
            if sectorSize == 4096 {
                guard let t = try ToolViews.withLoopDevice(path, sectorSize: 4096, { try ToolViews.sfdisk($0) }) else { return }
                tool = t
            } else {
                tool = try ToolViews.sfdisk(path)
            }
            #expect(tool.sectorSize == sectorSize)
            #expect(parts.compactMap { $0["index"] as? Int } == tool.partitions.map(\.index).sorted())
            #expect((table["disk_id"] as? String).map { tool.label == "dos" ? "0x" + $0 : $0 } == tool.id.lowercased())
            let partx = tool.label == "dos" ? try ToolViews.partx(path) : [:]
            for t in tool.partitions {
                let p = try #require(parts.first { $0["index"] as? Int == t.index })
                #expect((p["start"] as? NSNumber)?.uint64Value == t.start * UInt64(sectorSize), "\(path) \(t.index) start")
                #expect((p["size"] as? NSNumber)?.uint64Value == t.size * UInt64(sectorSize), "\(path) \(t.index) size")
                if tool.label == "gpt" {
                    #expect(p["type"] as? String == t.type.lowercased())
                    #expect(p["uuid"] as? String == t.uuid?.lowercased())
                    #expect(p["name"] as? String == t.name)
                } else {
                    let ours = (p["type"] as? String).flatMap { UInt8($0.dropFirst(2), radix: 16) }
                    #expect(ours == UInt8(t.type, radix: 16), "\(path) \(t.index) type")
                    #expect(p["name"] is NSNull)
                    #expect(p["uuid"] as? String == partx[t.index]?["UUID"], "\(path) \(t.index) PARTUUID")
                    #expect(p["bootable"] as? Bool == t.bootable)
                }
            }
        }

        // Filesystems: blkid -p on each partition's byte range.
        for p in parts {
            let start = try #require((p["start"] as? NSNumber)?.uint64Value)
            let length = try #require((p["size"] as? NSNumber)?.uint64Value)
            let theirs = try ToolViews.blkid(path, offset: start, size: length)
            let index = p["index"] as? Int ?? 0
            if let fs = p["filesystem"] as? [String: Any] {
                #expect(fs["type"] as? String == theirs["TYPE"], "\(path) \(index) TYPE")
                #expect(fs["label"] as? String == theirs["LABEL"], "\(path) \(index) LABEL")
                #expect(fs["uuid"] as? String == theirs["UUID"], "\(path) \(index) UUID")
                #expect(fs["version"] as? String == theirs["VERSION"], "\(path) \(index) VERSION")
                for key in ["type", "label", "uuid", "version"] { #expect(fs.keys.contains(key)) }
            } else {
                #expect(p["filesystem"] is NSNull)
                #expect(theirs["TYPE"] == nil, "\(path) \(index): blkid finds \(theirs["TYPE"] ?? "")")
            }
        }
    }

    @Test(arguments: disks)
    func facadeJSONMatchesSfdiskAndBlkid(_ name: String) throws {
        let path = try TestImages.path(name)
        let inspection = try Disk(path: path).inspect()
        try Self.checkAgainstTools(try Self.document(try inspection.json()), image: path)
        // The JSON decodes back to the same values.
        #expect(try JSONDecoder().decode(DiskInspection.self, from: Data(try inspection.json().utf8)) == inspection)
    }

    @Test func haosFilesystemsAsTheFieldGuideSays() throws {
        let inspection = try Disk(path: try TestImages.path("haos-gpt.img")).inspect()
        let fs = inspection.partitions.map { $0.filesystem?.type }
        #expect(fs == ["vfat", "squashfs", "erofs", nil, nil, nil, "ext4", "ext4"])
        #expect(inspection.partitions.map { $0.filesystem?.label } == ["hassos-boot", nil, nil, nil, nil, nil, "hassos-overlay", "hassos-data"])
        #expect(inspection.table.warnings.isEmpty)
        let text = inspection.text()
        for p in inspection.partitions { #expect(text.contains(p.name ?? "?")) }
    }

    @Test func bareFilesystemsAreNamed() throws {
        for (name, type) in [("bare-ext2.img", "ext2"), ("bare-ext3.img", "ext3"), ("bare-swap.img", "swap"),
                             ("bare-f2fs.img", "f2fs"), ("bare-btrfs.img", "btrfs"), ("bare-xfs.img", "xfs")] {
            let inspection = try Disk(path: try TestImages.path(name)).inspect()
            #expect(inspection.table.type == "none")
            #expect(inspection.partitions.map { $0.filesystem?.type } == [type])
        }
    }

    @Test func f2fsFeaturesAreNamed() throws {
        let inspection = try Disk(path: try TestImages.path("fs-f2fs.img")).inspect()
        let features = try #require(inspection.partitions.first?.filesystem?.features)
        #expect(features == ["extra_attr", "project_quota", "inode_checksum", "quota_ino", "inode_crtime", "sb_checksum"])
        #expect(inspection.text().contains("partition 1: f2fs features: extra_attr,project_quota,inode_checksum,quota_ino,inode_crtime,sb_checksum"))
        #expect(try inspection.json().contains("\"features\" : ["))
        // Other filesystems carry no feature list.
        #expect(try Disk(path: try TestImages.path("bare-ext2.img")).inspect().partitions.first?.filesystem?.features == nil)
    }

    @Test func backupGPTWarningIsReported() throws {
        let inspection = try Disk(path: try TestImages.path("gpt-bad-primary.img")).inspect()
        #expect(inspection.table.warnings.count == 1)
        #expect(inspection.table.warnings.contains { $0.contains("primary GPT is unusable") })
        #expect(!inspection.text().contains("warning:"))  // on standard error, as every command prints them
    }

    // MARK: bad input through the facade

    static func temporaryFile(_ bytes: [UInt8]) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("fwa-cli-\(UUID().uuidString).img").path
        try Data(bytes).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test(arguments: [
        ("empty", [UInt8](), "empty"),
        ("truncated", [UInt8](repeating: 0, count: 100), "too small"),
        ("no table, no filesystem", [UInt8](repeating: 0x41, count: 1 << 20), "no partition table"),
    ])
    func badImagesGiveErrorsNamingTheImage(_ label: String, _ bytes: [UInt8], _ fragment: String) throws {
        let path = try Self.temporaryFile(bytes)
        defer { try? FileManager.default.removeItem(atPath: path) }
        let error = try #require(throws: FWErrorDescription.self) {
            do { _ = try Disk(path: path).inspect() } catch { throw FWErrorDescription(text: "\(error)") }
        }
        #expect(error.text.hasPrefix(path + ": "), "\(label): \(error.text)")
        #expect(error.text.contains(fragment), "\(label): \(error.text)")
    }

    @Test func directoryIsRejected() throws {
        let dir = FileManager.default.temporaryDirectory.path
        #expect(throws: (any Error).self) { try Disk(path: dir) }
        do { _ = try Disk(path: dir) } catch { #expect("\(error)".contains(dir) && "\(error)".contains("directory")) }
    }

    struct FWErrorDescription: Error { var text: String }
}
