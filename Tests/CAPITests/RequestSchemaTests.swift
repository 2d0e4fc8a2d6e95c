import CFwassemble
import FirmwareAssembler
import Foundation
import Testing
import TestSupport

/// Every option of the CLI's jobs exists in the request (the one place options live), and the C
/// ABI (and so Python, which passes its keyword options as the same JSON) accepts it.
@Suite struct RequestSchemaTests {
    /// Options that shape what the CLI prints, not what the job does.
    static let presentation: Set<String> = ["quiet", "verbose", "version", "help", "request", "json", "expect"]

    /// The long option names of `fwassemble <command>`, from ArgumentParser's own description.
    static func options(_ command: String) throws -> [(name: String, flag: Bool)] {
        let r = try FwassembleCLI.run([command, "--experimental-dump-help"])
        #expect(r.status == 0)
        let json = try #require(try JSONSerialization.jsonObject(with: r.stdout) as? [String: Any])
        let arguments = try #require((json["command"] as? [String: Any])?["arguments"] as? [[String: Any]])
        return arguments.compactMap { a in
            guard let kind = a["kind"] as? String, kind != "positional" else { return nil }
            let names = (a["names"] as? [[String: Any]] ?? []).compactMap { $0["name"] as? String }
            guard let long = names.first(where: { $0.count > 1 }), !presentation.contains(long) else { return nil }
            return (long, kind == "flag")
        }
    }

    /// The request key of a long option: its name with `_` for `-` (a repeatable option's key,
    /// `add_tar`, `device`, is a list).
    static func key(_ option: String) -> String {
        option.replacingOccurrences(of: "-", with: "_")
    }

    /// A value of the right type for a key.
    static func sample(_ key: String, flag: Bool) -> Any {
        if flag { return true }
        switch key {
        case "level", "threads", "padding", "inodes": return 1
        case "add_tar": return ["x.tar"]
        case "device": return ["x.img"]
        case "format": return "tar"
        case "compression": return "gzip"
        case "hardlinks": return "link"
        default: return "x"
        }
    }

    @Test func everyAssembleOptionIsARequestKey() throws {
        let options = try Self.options("assemble")
        #expect(options.count >= 18)
        for (name, _) in options {
            #expect(AssembleRequest.keys.contains(Self.key(name)), "assemble --\(name) is not in AssembleRequest")
        }
    }

    @Test func everyExtractAndExportOptionIsARequestKey() throws {
        for (name, _) in try Self.options("extract") {
            let key = Self.key(name)
            #expect(ExtractRequest.keys.contains(key), "extract --\(name) is not in ExtractRequest")
        }
        for (name, _) in try Self.options("docker") {
            #expect(ExportRequest.keys.contains(Self.key(name)), "docker --\(name) is not in ExportRequest")
        }
    }

    /// The layer bounds of an export (issue 22) are request keys, as C and Python send them.
    @Test func exportLayerLimitsAreRequestKeys() throws {
        let request = try ExportRequest.decode(Array(#"{"export_image": "x", "output": "a.tar", "max_layer_size": 5, "max_layer_ratio": 2}"#.utf8))
        #expect(request.maxLayerSize == 5 && request.maxLayerRatio == 2)
        #expect(try ExportRequest.decode(Array(try JSONEncoder().encode(request))) == request)
        for zero in [#"{"export_image": "x", "output": "a.tar", "max_layer_size": 0}"#, #"{"export_image": "x", "output": "a.tar", "max_layer_ratio": 0}"#] {
            #expect(throws: FWError.self) { try ExportRequest.decode(Array(zero.utf8)).validate() }
        }
    }

    /// ls, cat, stat, find read the tree `BrowseRequest` names (their own query options aside:
    /// stat's --dereference, find's --name and --type); diff's options are `DiffRequest` keys.
    @Test func everyBrowseAndDiffOptionIsARequestKey() throws {
        let queries: Set<String> = ["dereference", "name", "type"]
        for command in ["ls", "cat", "stat", "find"] {
            let options = try Self.options(command).filter { !queries.contains($0.name) }
            #expect(options.count >= 5, "\(command)")
            for (name, _) in options {
                #expect(BrowseRequest.keys.contains(Self.key(name)), "\(command) --\(name) is not in BrowseRequest")
            }
        }
        for (name, _) in try Self.options("diff") {
            #expect(DiffRequest.keys.contains(Self.key(name)), "diff --\(name) is not in DiffRequest")
        }
        let request = try DiffRequest.decode(Array(#"{"disk": "a.img", "other": "b.img", "root": 3, "path": "/etc", "no_content": true}"#.utf8))
        #expect(request.tree.root == "3" && request.other == "b.img" && request.noContent && request.path == "/etc")
        #expect(try DiffRequest.decode(Array(try JSONText.line(request).utf8)) == request)
        #expect(throws: FWError.self) { try BrowseRequest.decode(Array(#"{"output": "x"}"#.utf8)) }
    }

    /// Each assemble key alone is accepted by fwa_assemble's decoder: the call fails on the
    /// deliberately bad "threads" (checked after decoding), never on an unknown key.
    @Test func theCABIAcceptsEveryAssembleOption() throws {
        var handle: OpaquePointer?
        var err: OpaquePointer?
        #expect(fwa_open(try TestImages.path("sample.img"), &handle, &err) == 0)
        defer { fwa_close(handle) }
        for (name, flag) in try Self.options("assemble") {
            let key = Self.key(name)
            guard !["backing_dir", "snapshot", "threads"].contains(key) else { continue }  // fwa_open2's; the probe itself
            let json = String(decoding: try JSONSerialization.data(withJSONObject: [key: Self.sample(key, flag: flag), "threads": 0]), as: UTF8.self)
            var report: UnsafeMutablePointer<CChar>?
            let status = fwa_assemble(handle, "/nonexistent-folder/x", json, nil, nil, &report, &err)
            let message = fwa_error_message(err).map { String(cString: $0) } ?? ""
            fwa_error_free(err)
            #expect(status == 6, "\(key): \(message)")
            #expect(!message.contains("unknown"), "\(key): \(message)")
        }
        // And fwa_open2 takes the source options.
        var other: OpaquePointer?
        #expect(fwa_open2(try TestImages.path("sample.img"), "{\"backing_dir\": \"/tmp\"}", &other, &err) == 0)
        fwa_close(other)
        #expect(fwa_open2(try TestImages.path("sample.img"), "{\"rehost\": true}", &other, &err) == 6)
        fwa_error_free(err)
    }

    @Test func aRequestRoundTripsThroughJSON() throws {
        var r = AssembleRequest()
        r.source = SourceRequest(disk: "d.img", backingDir: "/b", snapshot: "s1", noReplay: true)
        r.root = "3"
        r.noDevices = true
        r.rehost = true
        r.hardlinks = .link
        r.addTar = ["a.tar", "b.tar.gz"]
        r.output = OutputRequest(format: .ext4, output: "o.ext4", report: "r.json")
        r.padding = 16
        r.inodes = 5000
        r.uuid = "12345678-1234-4234-8234-123456789abc"
        r.strict = true
        #expect(try AssembleRequest.decode(Array(try r.json().utf8)) == r)
        #expect(try AssembleRequest.decode(Array("{\"root\": 3, \"add_tar\": \"x.tar\"}".utf8)).root == "3")
        #expect(throws: FWError.self) { try AssembleRequest.decode(Array("{\"rehots\": true}".utf8)) }
        #expect(throws: FWError.self) { try AssembleRequest.decode(Array("{\"level\": \"9\"}".utf8)) }
    }
}
