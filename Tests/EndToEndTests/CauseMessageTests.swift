import FirmwareAssembler
import Foundation
import TestSupport
import Testing

/// Errors that name their cause: a disk with no root fwassemble reads says what each partition
/// holds (a filesystem without a reader, a partition past the end of a truncated image); a
/// partition in such a filesystem says so on extract; an ext4 image too small for the content
/// names the entry that did not fit and the option that makes it larger, not the temporary file.
@Suite struct CauseMessageTests {
    @Test("plan and assemble name the filesystem that has no reader", arguments: ["xfs"])
    func rootWithoutReader(type: String) throws {
        let image = try TestImages.path("bare-\(type).img")
        let scratch = try ScratchDir()
        for arguments in [["plan", image], ["assemble", image, "-q", "-o", scratch.path + "/out.tar.gz"]] {
            let r = try CLI.run(arguments)
            #expect(r.status != 0)
            #expect(r.stderr.contains("no partition holds a Linux root filesystem fwassemble reads"), "\(r.stderr)")
            #expect(r.stderr.contains("partition 1 (bare-\(type)) holds \(type), which fwassemble does not read"), "\(r.stderr)")
        }
    }

    @Test("plan on a truncated disk names the partitions past the end of the image")
    func truncatedDisk() throws {
        let scratch = try ScratchDir()
        let copy = scratch.path + "/sample-16M.img"
        let original = try FileHandle(forReadingFrom: URL(fileURLWithPath: try TestImages.path("sample.img")))
        defer { try? original.close() }
        // Cut inside partition 3 (the root slot A): partitions 3 to 8 reach past the end.
        let size = 16 << 20
        #expect(FileManager.default.createFile(atPath: copy, contents: try original.read(upToCount: size)))
        let disk = try Disk(path: copy)
        let cut = try disk.inspect().partitions.filter { !$0.withinImage && !$0.extended }
        try #require(!cut.isEmpty, "sample.img cut at 16 MiB keeps all its partitions")
        let r = try CLI.run(["plan", copy])
        #expect(r.status != 0)
        #expect(r.stderr.contains("no partition holds a Linux root filesystem fwassemble reads"), "\(r.stderr)")
        #expect(r.stderr.contains("partition 1 (hassos-boot) holds vfat with no Linux root in it"), "\(r.stderr)")
        for p in cut {
            #expect(r.stderr.contains("partition \(p.index)") && r.stderr.contains(
                "reaches past the end of the image (image \(size) bytes, partition ends at \(p.start + p.size))"), "\(r.stderr)")
        }
    }

    @Test("extract of a filesystem without a reader names it", arguments: ["xfs"])
    func extractWithoutReader(type: String) throws {
        let scratch = try ScratchDir()
        let r = try CLI.run(["extract", try TestImages.path("bare-\(type).img"), "--partition", "1", "-q", "-o", scratch.path + "/x.tar"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("holds \(type), which fwassemble does not read yet"), "\(r.stderr)")
        #expect(!r.stderr.contains("unknown magic"), "\(r.stderr)")
    }

    @Test("an ext4 image with too few inodes names the entry and --inodes, not the temporary file")
    func ext4TooFewInodes() throws {
        let scratch = try ScratchDir()
        let r = try CLI.run(["assemble", try TestImages.path("sample.img"), "-q", "-o", scratch.path + "/small.ext4",
                             "--padding", "0", "--inodes", "16"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("the ext4 image is too small: "), "\(r.stderr)")
        #expect(r.stderr.contains("inodes for the content; give --inodes larger"), "\(r.stderr)")
        #expect(r.stderr.contains(": /"), "names the entry: \(r.stderr)")
        #expect(!r.stderr.contains("fwassemble-tmp") && !r.stderr.contains("/.small.ext4"), "\(r.stderr)")
        #expect(!FileManager.default.fileExists(atPath: scratch.path + "/small.ext4"))
    }

    @Test("an ext4 image with too few blocks names the entry and --padding, not the temporary file")
    func ext4TooFewBlocks() throws {
        let scratch = try ScratchDir()
        // 80000 inodes: their tables take 5000 of the 6367 blocks --padding 0 gives sample.img.
        let r = try CLI.run(["assemble", try TestImages.path("sample.img"), "-q", "-o", scratch.path + "/small.ext4",
                             "--padding", "0", "--inodes", "80000"])
        #expect(r.status != 0)
        #expect(r.stderr.contains("the ext4 image is too small: "), "\(r.stderr)")
        #expect(r.stderr.contains("blocks of 4 KiB for the content; give --padding (MiB) larger"), "\(r.stderr)")
        #expect(r.stderr.contains(": /"), "names the entry: \(r.stderr)")
        #expect(!r.stderr.contains("fwassemble-tmp") && !r.stderr.contains("/.small.ext4"), "\(r.stderr)")
    }
}
