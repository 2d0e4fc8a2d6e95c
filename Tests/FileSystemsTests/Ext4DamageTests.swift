import DiskImage
@testable import FileSystemExt4
import FileSystems
import Foundation
import Testing
import TestSupport

/// images/disks/ext4-damage.sh: inodes the kernel wrote (ea_inode symlinks, version 3 file
/// capabilities) and damage debugfs/dd made afterwards (a zeroed symlink block, a fast symlink
/// with NUL bytes, an overwritten xattr block header, a link count of 0), with the kernel's own
/// view of a writable copy (ext4-damage.manifest) and the names it cannot stat
/// (ext4-damage.unreadable).
@Suite("Ext4 inodes as the kernel reads them: ea_inode symlinks, capabilities, damaged inodes",
       .enabled(if: HotImages.path("ext4-damage.img") != nil, "images/disks/ext4-damage.sh needs root and loop devices"))
struct Ext4DamageTests {
    static func open() throws -> Ext4Reader {
        try Ext4Reader(source: FileSource(path: try #require(HotImages.path("ext4-damage.img"))), name: "ext4-damage.img")
    }

    @Test("the reader's view equals the kernel's mount in every field")
    func matchesKernel() throws {
        let (actual, problems) = try Manifest.of(try Self.open())
        let expected = try HotImages.manifest("ext4-damage.img")
        // The kernel's view holds each case (so the comparison cannot pass vacuously).
        let byPath = Dictionary(expected.map { ($0.path, $0) }) { a, _ in a }
        #expect(byPath["ea/fast-link"]?.target == "short-target" && byPath["ea/fast-link"]?.xattrs["trusted.big"]?.count == 16000)
        #expect(byPath["nul-link"]?.target == "")
        #expect(byPath["cap/v3-root0"]?.xattrs["security.capability"] == "0100000200300000000000000000000000000000")
        #expect(byPath["cap/v3-root1000"]?.xattrs["security.capability"]?.count == 48)
        #expect(byPath["bad-xattr-dir/sub/file"] != nil && byPath["bad-xattr-dir"]?.xattrs.isEmpty == true)
        let diffs = Manifest.differences(expected: expected, actual: actual)
        #expect(diffs.isEmpty, "\(diffs.prefix(20).joined(separator: "\n"))")

        // What the kernel cannot stat is what the walk reports and leaves out; the directory
        // whose xattr block is damaged is reported but kept, with its subtree.
        let unreadable = try String(contentsOfFile: try #require(HotImages.path("ext4-damage.unreadable")), encoding: .utf8)
            .split(separator: "\n").map { String($0.split(separator: "\t")[0]) }
        #expect(unreadable.sorted() == ["fast-nul", "zero-links"])
        #expect(problems.map(\.path).sorted() == ["/bad-xattr-dir", "/fast-nul", "/zero-links"], "\(problems)")
        let messages = Dictionary(problems.map { (String($0.path.dropFirst()), $0.error.message) }) { a, _ in a }
        #expect(messages["fast-nul"]?.contains("invalid fast symlink length") == true)
        #expect(messages["zero-links"]?.contains("deleted inode referenced") == true)
        #expect(messages["bad-xattr-dir"]?.contains("xattrs left out") == true)
    }

    @Test("the stored capabilities are version 3: the conversion is the reader's, not the recipe's")
    func storedCapabilities() throws {
        let raw = try String(contentsOfFile: try #require(HotImages.path("ext4-damage.raw-caps")), encoding: .utf8)
        #expect(raw.contains("v3-root0 security.capability(24)=010000030030000000000000000000000000000000000000"))
    }

    @Test("extract prints one warning line per problem and counts them all")
    func extractWarnings() throws {
        guard FwassembleCLI.path != nil else { return }
        let image = try #require(HotImages.path("ext4-damage.img"))
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("ext4-damage-\(getpid()).tar").path
        defer { try? FileManager.default.removeItem(atPath: out) }   // cleanup only
        let result = try FwassembleCLI.run(["extract", image, "--partition", "1", "-o", out])
        #expect(result.status == 0, "\(result.stderr)")
        let warnings = result.stderr.split(separator: "\n").filter { $0.hasPrefix("warning: ") }
        #expect(warnings.count == 3, "\(result.stderr)")
        #expect(result.stderr.contains("; 3 warnings"), "\(result.stderr)")
    }
}
