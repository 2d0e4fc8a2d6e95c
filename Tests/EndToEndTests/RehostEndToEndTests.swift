import FirmwareAssembler
import Foundation
import TestSupport
import Testing

/// `assemble --rehost` on the realistic disks: exactly the folded units are masked, the folded
/// fstab lines commented out, and nothing else in the archive changes.
@Suite(.enabled(if: CLI.path != nil, "fwassemble binary not built"))
struct RehostEndToEndTests {
    @Test(arguments: ["haos-full.img", "rpi-full.img"])
    func masksExactlyTheFoldedUnits(_ image: String) throws {
        let scratch = try ScratchDir()
        let path = try TestImages.path(image)
        let plain = scratch.path + "/plain.tar.gz"
        let rehosted = scratch.path + "/rehost.tar.gz"
        #expect(try CLI.run(["assemble", path, "-o", plain, "--quiet"]).status == 0)
        let r = try CLI.run(["assemble", path, "-o", rehosted, "--quiet", "--rehost"])
        #expect(r.status == 0, "\(r.stderr)")
        let before = Dictionary(try TarView.manifest(plain).map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })
        let after = Dictionary(try TarView.manifest(rehosted).map { ($0.path, $0) }, uniquingKeysWith: { a, _ in a })

        let plan = try Disk(path: path).plan()
        let foldedUnits = Set(plan.mounts.dropFirst().compactMap { m -> String? in
            guard m.declaredBy.hasSuffix(".mount") else { return nil }
            return "etc/systemd/system/" + (m.declaredBy.split(separator: "/").last.map(String.init) ?? "")
        })
        let foldedLines = plan.mounts.dropFirst().filter { $0.declaredBy.hasPrefix("/etc/fstab:") }.count
        #expect(!foldedUnits.isEmpty || foldedLines > 0)

        // Every change is a mask of a folded unit or the rewritten fstab.
        var masked = Set<String>()
        for (p, a) in after where before[p] != a {
            if a.type == "symlink", a.target == "/dev/null" {
                masked.insert(p)
            } else {
                #expect(p == "etc/fstab", "unexpected change at \(p)")
            }
        }
        #expect(masked == foldedUnits)
        #expect(Set(before.keys).subtracting(after.keys).isEmpty)
        // Units that were not folded (mnt-config.mount on HAOS) stay unmasked.
        #expect(!masked.contains("etc/systemd/system/mnt-config.mount"))

        let report = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: rehosted + ".report.json"))) as? [String: Any]
        let changes = try #require(report?["rehost"] as? [[String: Any]])
        #expect(changes.count == foldedUnits.count + foldedLines)
        if foldedLines > 0 {
            let fstab = try String(decoding: TestImages.run(["bash", "-c", "tar -xzOf \"$0\" ./etc/fstab", rehosted]), as: UTF8.self)
            #expect(fstab.components(separatedBy: "# fwassemble --rehost: folded into the archive: ").count - 1 == foldedLines)
        }
    }
}
