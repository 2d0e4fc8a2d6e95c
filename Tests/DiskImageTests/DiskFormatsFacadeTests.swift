import Foundation
import Testing
import DiskImage
import DiskFormats
import FirmwareAssembler
import TestSupport

/// inspect, plan and assemble through the facade give on every container exactly what they give
/// on the raw disk (apart from the image's own fields), and the assembled archive is
/// byte-identical.
@Suite("Disk image formats through the facade")
struct DiskFormatsFacadeTests {
    static let images: [(String, String)] = [
        ("formats.qcow2", "qcow2"),
        ("formats-deflate.qcow2", "qcow2"),
        ("formats-zstd.qcow2", "qcow2"),
        ("formats-chain/base.qcow2", "qcow2"),
        ("formats-stream.vmdk", "vmdk"),
        ("formats-vmdk/split.vmdk", "vmdk"),
        ("formats.vhdx", "vhdx"),
        ("formats.vhd", "vpc"),
        ("formats.vdi", "vdi"),
        ("formats.qcow2.xz", "xz+qcow2"),
        ("formats-raw.img.gz", "gzip+raw"),
        ("formats-raw.img.zst", "zstd+raw"),
        ("formats-stream.vmdk.zip", "zip+vmdk"),
        ("formats.ova", "tar+vmdk"),
    ]

    /// inspect with the image's path and format fields blanked.
    func inspection(_ path: String) throws -> DiskInspection {
        var i = try Disk(path: path).inspect()
        i.image.path = ""
        i.image.format = nil
        return i
    }

    func assembled(_ path: String, into dir: String) throws -> [UInt8] {
        let output = "\(dir)/\(UUID().uuidString).tar.gz"
        var request = AssembleRequest()
        request.output = OutputRequest(threads: 1, output: output, report: "\(output).report.json")
        _ = try Disk(path: path).assemble(request)
        return [UInt8](try Data(contentsOf: URL(fileURLWithPath: output)))
    }

    @Test("inspect, plan and assemble match the raw disk", arguments: images)
    func sameAsRaw(name: String, format: String) throws {
        let raw = try TestImages.path("formats-raw.img")
        let path = try TestImages.path(name)
        let disk = try Disk(path: path)
        #expect(disk.format == format)
        let inspected = try disk.inspect()
        #expect(inspected.image.format == format)
        #expect(inspected.image.virtualSize == 128 << 20)
        #expect(try inspection(path) == inspection(raw))
        #expect(try disk.plan().json().replacingOccurrences(of: path, with: "IMAGE")
                == Disk(path: raw).plan().json().replacingOccurrences(of: raw, with: "IMAGE"))

        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fwa-formats-\(getpid())-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let expected = try assembled(raw, into: dir)
        #expect(expected.count > 100) // a gzip stream holding the erofs root (a few entries)
        #expect(try assembled(path, into: dir) == expected)
    }

    @Test("a raw disk is reported as raw and probed as before")
    func raw() throws {
        let inspected = try Disk(path: try TestImages.path("formats-raw.img")).inspect()
        #expect(inspected.image.format == "raw")
        #expect(inspected.partitions.compactMap { $0.filesystem?.type } == ["vfat", "squashfs", "erofs", "ext4", "ext4"])
    }
}
