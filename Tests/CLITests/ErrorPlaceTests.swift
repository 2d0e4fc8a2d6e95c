import FirmwareAssembler
import Foundation
import TestSupport
import Testing

/// An error inside a filesystem names the image and the partition once each: before, an ext4
/// error read "f.img (whole image): f.img (whole image): cannot open ..." (the description was
/// put into both the partition and the disk field).
@Suite(.enabled(if: FwassembleCLI.path != nil, "fwassemble binary not built"))
struct ErrorPlaceTests {
    /// A copy of test image `name` with `bytes` written at `offset` (removed by the caller).
    static func damagedCopy(of name: String, at offset: UInt64, _ bytes: [UInt8]) throws -> String {
        let copy = FileManager.default.temporaryDirectory.appendingPathComponent("fwa-place-\(UUID().uuidString).img").path
        try FileManager.default.copyItem(atPath: try TestImages.path(name), toPath: copy)
        let handle = try #require(FileHandle(forWritingAtPath: copy))
        defer { try? handle.close() }
        try handle.seek(toOffset: offset)
        try handle.write(contentsOf: Data(bytes))
        return copy
    }

    static func occurrences(of fragment: String, in text: String) -> Int {
        text.components(separatedBy: fragment).count - 1
    }

    /// Where partition `index` of test image `name` starts.
    static func start(of index: Int, in name: String) throws -> UInt64 {
        let inspection = try Disk(path: try TestImages.path(name)).inspect()
        return try #require(inspection.partitions.first { $0.index == index }).start
    }

    @Test func bareFilesystemThatCannotBeOpened() throws {
        // s_log_block_size (superblock byte 24) = 255: libext2fs refuses the superblock.
        let image = try Self.damagedCopy(of: "bare-ext2.img", at: 1024 + 24, [0xFF, 0, 0, 0])
        defer { try? FileManager.default.removeItem(atPath: image) }
        let output = image + ".tar"
        let r = try FwassembleCLI.run(["extract", image, "-p", "1", "-o", output])
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stderr == "fwassemble: \(image) (whole image): cannot open the ext2/3/4 filesystem: The ext2 superblock is corrupt\n")
        #expect(Self.occurrences(of: image, in: r.stderr) == 1, "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: output))

        let error = try #require(throws: FWError.self) {
            try Disk(path: image).extract(ExtractRequest(partition: "1", output: OutputRequest(compression: CompressionFormat.none, output: output)))
        }
        #expect(error.disk == image && error.partition == "(whole image)" && error.path == nil, "\(error)")
        #expect(error.code == .corrupt)
    }

    @Test(arguments: [(2, "rootfs", "cannot open the ext2/3/4 filesystem"),
                      (3, "system", "squashfs bytes_used 0 does not fit")])
    func partitionThatCannotBeOpened(index: Int, name: String, fragment: String) throws {
        let start = try Self.start(of: index, in: "extract-gpt.img")
        // ext4: s_log_block_size = 255; squashfs: bytes_used (superblock byte 40) = 0.
        let (offset, bytes): (UInt64, [UInt8]) = name == "rootfs" ? (1024 + 24, [0xFF, 0, 0, 0]) : (40, [UInt8](repeating: 0, count: 8))
        let image = try Self.damagedCopy(of: "extract-gpt.img", at: start + offset, bytes)
        defer { try? FileManager.default.removeItem(atPath: image) }
        let output = image + ".tar"
        let r = try FwassembleCLI.run(["extract", image, "-p", String(index), "-o", output])
        #expect(r.status == 1, "\(r.stderr)")
        #expect(r.stderr.hasPrefix("fwassemble: \(image) partition \(index) (\(name)): \(fragment)"), "\(r.stderr)")
        #expect(Self.occurrences(of: image, in: r.stderr) == 1, "\(r.stderr)")
        #expect(Self.occurrences(of: "partition \(index)", in: r.stderr) == 1, "\(r.stderr)")
        #expect(r.stderr.split(separator: "\n").count == 1, "\(r.stderr)")

        // The facade: the image and the partition in their own fields, named once in the text.
        let disk = try Disk(path: image)
        let error = try #require(throws: FWError.self) {
            try disk.extract(ExtractRequest(partition: name, output: OutputRequest(compression: CompressionFormat.none, output: output)))
        }
        #expect(error.disk == image && error.partition == "partition \(index) (\(name))", "\(error)")
        #expect(Self.occurrences(of: image, in: error.description) == 1, "\(error)")

        // The plan names the partition in its warning (report JSON): unchanged text.
        let plan = try disk.plan()
        let warning = try #require(plan.warnings.first { $0.hasPrefix("partition \(index): cannot read its filesystem: ") }, "\(plan.warnings)")
        #expect(warning.hasPrefix("partition \(index): cannot read its filesystem: \(image) partition \(index) (\(name)): \(fragment)"), "\(warning)")
        #expect(Self.occurrences(of: image, in: warning) == 1, "\(warning)")
    }

    @Test func codesKeepTheirNamesAndWrappedErrorsTheirCause() throws {
        #expect([FWError.Code.io, .notFound, .corrupt, .unsupported, .limitExceeded, .invalidArgument].map(\.name)
                == ["io", "notFound", "corrupt", "unsupported", "limitExceeded", "invalidArgument"])
        let underlying = CocoaError(.fileReadNoPermission)
        let wrapped = FWError(underlying)
        #expect(wrapped.code == .io && wrapped.message == "\(underlying)")
        #expect(wrapped.cause is CocoaError)
        let original = FWError(.corrupt, "bad", disk: "d.img", partition: "partition 2", path: "/etc")
        #expect(FWError(original) == original)
        #expect(original.description == "d.img partition 2: /etc: bad")
        #expect(original.within(disk: "other.img", partition: "partition 9").description == original.description)
    }
}
