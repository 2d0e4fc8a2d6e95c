import Foundation
import TestSupport
import Testing

/// A `--device` that no btrfs of the run takes is a warning (code `device`) of every job, with
/// the reasons the btrfs readers gave; `--strict` fails on it. The images are
/// images/disks/fs-btrfs.sh's (kernel-written: built only with loop devices, else skipped).
@Suite("--device files no btrfs takes",
       .enabled(if: FwassembleCLI.path != nil && (try? TestImages.path("fs-btrfs.img")) != nil,   // a probe: a missing image skips
                "fwassemble not built or the btrfs images not built"))
struct DeviceWarningTests {
    static func image(_ name: String) throws -> String { try TestImages.path(name) }

    @Test("extract and ls of another btrfs: a warning naming the device and why it was passed over; not for a real member")
    func browseAndExtract() throws {
        let other = try Self.image("fs-btrfs-raid1-b.img")
        let folder = try BtrfsDevicesCLITests.temporaryFolder()
        defer { BtrfsDevicesCLITests.remove(folder) }
        let warning = "--device \(other): not a member of any btrfs this run read (another btrfs filesystem (fsid "

        let extract = try FwassembleCLI.run(["extract", try Self.image("fs-btrfs.img"), "--partition", "1",
                                             "-o", folder + "/out.tar", "--device", other])
        #expect(extract.status == 0, "\(extract.stderr)")
        #expect(extract.stderr.contains(warning) && extract.stderr.contains("; 1 warning"), "\(extract.stderr)")
        let strict = try FwassembleCLI.run(["extract", try Self.image("fs-btrfs.img"), "--partition", "1",
                                            "-o", folder + "/strict.tar", "--device", other, "--strict"])
        #expect(strict.status == 1 && strict.stderr.contains("--strict: 1 warning, the first: ") && strict.stderr.contains(warning),
                "\(strict.stderr)")
        #expect(!FileManager.default.fileExists(atPath: folder + "/strict.tar"))

        let ls = try FwassembleCLI.run(["ls", try Self.image("fs-btrfs.img"), "--partition", "1", "/", "--device", other])
        #expect(ls.status == 0 && ls.stderr.contains("warning: " + warning), "\(ls.stderr)")
        // The other half of the RAID1 pair is a member: nothing to say.
        let member = try FwassembleCLI.run(["ls", try Self.image("fs-btrfs-raid1-a.img"), "--partition", "1", "/", "--device", other])
        #expect(member.status == 0 && !member.stderr.contains("--device"), "\(member.stderr)")
    }

    @Test("assemble of a disk without btrfs: the report's warning and diagnostic (code device); --strict leaves nothing")
    func assembleReport() throws {
        let device = try Self.image("fs-btrfs-raid1-b.img")
        let folder = try BtrfsDevicesCLITests.temporaryFolder()
        defer { BtrfsDevicesCLITests.remove(folder) }
        let out = folder + "/haos.tar.gz"
        let r = try FwassembleCLI.run(["assemble", try Self.image("haos-gpt.img"), "-o", out, "--device", device])
        #expect(r.status == 0, "\(r.stderr)")
        let report = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: out + ".report.json"))) as? [String: Any])
        let diagnostics = try #require(report["diagnostics"] as? [[String: Any]])
        let entry = try #require(diagnostics.first { $0["code"] as? String == "device" })
        #expect(entry["place"] as? String == "--device \(device)")
        #expect(entry["message"] as? String == "not a member of any btrfs this run read")
        #expect((report["warnings"] as? [String])?.contains("--device \(device): not a member of any btrfs this run read") == true)

        let strict = try FwassembleCLI.run(["assemble", try Self.image("haos-gpt.img"), "-o", folder + "/strict.tar.gz",
                                            "--device", device, "--strict"])
        #expect(strict.status == 1 && strict.stderr.contains("--device \(device)"), "\(strict.stderr)")
        #expect(try FileManager.default.contentsOfDirectory(atPath: folder).sorted() == ["haos.tar.gz", "haos.tar.gz.report.json"])
    }
}
