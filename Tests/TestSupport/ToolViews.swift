import Foundation
import Testing

/// What independent tools (util-linux sfdisk, partx, blkid) say about a disk image.
public enum ToolViews {
    public struct ToolPartition: Equatable {
        public var index: Int
        public var start: UInt64        // sectors
        public var size: UInt64         // sectors
        public var type: String         // GUID uppercase or MBR hex without 0x ("c", "83")
        public var uuid: String?
        public var name: String?
        public var bootable: Bool
    }

    public struct ToolTable {
        public var label: String        // "gpt" or "dos"
        public var id: String
        public var sectorSize: Int
        public var partitions: [ToolPartition]
    }

    /// `sfdisk --json DEVICE` (stderr, where it warns about a corrupt primary GPT, is ignored).
    public static func sfdisk(_ device: String) throws -> ToolTable {
        let data = try TestImages.run(["sfdisk", "--json", device])
        let root = try #require(try JSONSerialization.jsonObject(with: data) as? [String: Any])
        let table = try #require(root["partitiontable"] as? [String: Any])
        let parts = (table["partitions"] as? [[String: Any]]) ?? []
        return ToolTable(
            label: try #require(table["label"] as? String),
            id: try #require(table["id"] as? String),
            sectorSize: (table["sectorsize"] as? Int) ?? 512,
            partitions: try parts.map { p in
                let node = try #require(p["node"] as? String)
                let digits = node.reversed().prefix { $0.isNumber }
                return ToolPartition(
                    index: try #require(Int(String(digits.reversed()))),
                    start: try #require((p["start"] as? NSNumber)?.uint64Value),
                    size: try #require((p["size"] as? NSNumber)?.uint64Value),
                    type: try #require(p["type"] as? String),
                    uuid: p["uuid"] as? String, name: p["name"] as? String,
                    bootable: (p["bootable"] as? Bool) ?? false)
            })
    }

    /// `partx -g -P -o NR,START,SECTORS,UUID,TYPE IMAGE` (libblkid's partition prober): gives
    /// the MBR PARTUUIDs `<signature>-NN` that sfdisk does not print.
    public static func partx(_ image: String) throws -> [Int: [String: String]] {
        let out = String(decoding: try TestImages.run(["partx", "-g", "-P", "-o", "NR,START,SECTORS,UUID,TYPE", image]), as: UTF8.self)
        var result: [Int: [String: String]] = [:]
        for line in out.split(separator: "\n") {
            let fields = exportPairs(String(line), separator: " ")
            if let nr = fields["NR"].flatMap({ Int($0) }) { result[nr] = fields }
        }
        return result
    }

    /// `blkid -p -o export --offset N --size M IMAGE`: nil TYPE when nothing is found (exit 2).
    public static func blkid(_ image: String, offset: UInt64, size: UInt64) throws -> [String: String] {
        do {
            let out = try TestImages.run(["blkid", "-p", "-o", "export", "--offset", String(offset), "--size", String(size), image])
            return exportPairs(String(decoding: out, as: UTF8.self), separator: "\n")
        } catch let failed as TestImages.CommandFailed where failed.status == 2 {
            return [:]   // blkid: nothing found
        }
    }

    /// KEY=VALUE pairs (partx -P quotes values; blkid export does not).
    public static func exportPairs(_ text: String, separator: Character) -> [String: String] {
        var result: [String: String] = [:]
        var rest = Substring(text)
        while !rest.isEmpty {
            rest = rest.drop { $0 == separator || $0 == "\n" }
            guard let eq = rest.firstIndex(of: "=") else { break }
            let key = String(rest[..<eq])
            rest = rest[rest.index(after: eq)...]
            var value = ""
            if rest.first == "\"" {
                rest = rest.dropFirst()
                let close = rest.firstIndex(of: "\"") ?? rest.endIndex
                value = String(rest[..<close])
                rest = close == rest.endIndex ? "" : rest[rest.index(after: close)...]
            } else {
                let end = rest.firstIndex(where: { $0 == separator || $0 == "\n" }) ?? rest.endIndex
                value = String(rest[..<end])
                rest = rest[end...]
            }
            result[key] = value
        }
        return result
    }

    /// Runs `body` with the image attached to a loop device with 4096-byte logical sectors
    /// (root only; returns nil otherwise). The device is always detached.
    public static func withLoopDevice<T>(_ image: String, sectorSize: Int, _ body: (String) throws -> T) throws -> T? {
        guard getuid() == 0 else { return nil }
        let dev = String(decoding: try TestImages.run(["losetup", "--find", "--show", "--read-only", "--sector-size", String(sectorSize), image]), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        defer { _ = try? TestImages.run(["losetup", "-d", dev]) }
        return try body(dev)
    }
}

