import Archive
import Assembly
import DiskImage
import DockerState
import FileSystems
import Foundation
import MountPlan

@_exported import struct MountPlan.RehostChange
@_exported import enum Archive.HardlinkMode

/// Progress of an assembly: entries and content bytes written so far, of a planned total.
public struct AssembleProgress: Sendable {
    public var entries: Int
    public var contentBytes: UInt64
    /// Bytes of the mounted partitions (an upper bound of what will be read).
    public var plannedBytes: UInt64
    public var currentPath: String
}

/// What `assemble` did: the sidecar `<output>.report.json`.
public struct AssembleReport: Sendable, Codable {
    public struct Origin: Sendable, Codable, Equatable {
        public var origin: String
        public var entries: Int
        public var bytes: UInt64
    }

    public var tool: String
    public var version: String
    public var image: String
    public var output: String
    public var compression: String
    public var plan: Plan
    /// Entries and content bytes per mounted filesystem ("partition 8").
    public var partitions: [Origin]
    public var members: Int
    public var files: Int
    public var hardlinks: Int
    public var contentBytes: UInt64
    public var tarBytes: UInt64
    /// Device nodes left out with `--no-devices`.
    public var droppedDevices: [String]
    /// Sockets (not representable in tar).
    public var skippedSockets: [String]
    /// Every warning as text ("place: message"), in the order met.
    public var warnings: [String]
    /// Entries that could not be read, with their paths.
    public var readErrors: [String]
    /// The same warnings and read errors as values, each with a code and a place (docs/assembly.md,
    /// "Warnings"): what a script parses instead of the text.
    public var diagnostics: [RunWarning] = []
    /// The Docker data-roots in the archive (docs/docker.md), nil when there are none.
    public var docker: DockerReport? = nil
    /// With `--rehost`: each unit masked and fstab line commented out.
    public var rehost: [RehostChange]? = nil
    /// With `--hardlinks copy` only: "copy", hardlink paths written as full files, and the content
    /// bytes they stored again.
    public var hardlinkMode: String? = nil
    public var copiedHardlinks: Int? = nil
    public var copiedBytes: UInt64? = nil
    /// With `--format ext4` only: "ext4" and the image's geometry.
    public var format: String? = nil
    public var ext4: Ext4ImageReport? = nil
    /// The ext3/ext4 partitions that needed recovery and what journal replay did to each (absent
    /// when none needed it).
    public var journals: [PartitionJournal]? = nil

    enum CodingKeys: String, CodingKey {
        case tool, version, image, output, compression, plan, partitions, members, files, hardlinks
        case contentBytes = "content_bytes", tarBytes = "tar_bytes", droppedDevices = "dropped_devices"
        case skippedSockets = "skipped_sockets", warnings, readErrors = "read_errors", docker, rehost, journals, diagnostics
        case hardlinkMode = "hardlink_mode", copiedHardlinks = "copied_hardlinks", copiedBytes = "copied_bytes"
        case format, ext4
    }

    public func json() throws -> String {
        try JSONText.pretty(self)
    }
}

/// The tool's version, written into reports.
public let fwassembleVersion = "0.1.0"

extension AssembleReport {
    /// A warning: in `diagnostics` as a value and in `warnings` as its text.
    mutating func warn(_ code: RunWarning.Code, at place: String?, _ message: String) {
        let w = RunWarning(code: code, place: place, message: message)
        diagnostics.append(w)
        warnings.append(w.text)
    }

    /// Entries that could not be read: `read_errors` (text) and `diagnostics` (code `read_error`).
    mutating func readErrors(_ errors: [(path: String, message: String)]) {
        readErrors = errors.map { "\($0.path): \($0.message)" }
        diagnostics += errors.map { RunWarning(code: .readError, place: $0.path, message: $0.message) }
    }

    /// The partitions whose journal needed recovery (`journals`, absent when none did), and
    /// their replay warnings among the report's warnings.
    mutating func addJournals(of booted: BootedNamespace) {
        let journals = booted.partitions.journals.sorted { $0.key < $1.key }.map { index, j in
            PartitionJournal(index: index, partition: j.description, journal: j.replay)
        }
        if !journals.isEmpty { self.journals = journals }
        for w in booted.partitions.journalWarnings { warn(.journal, at: w.place, w.message) }
    }
}

/// One warning or read error of a run, as a value: its kind, where it is (a partition, a path in
/// the namespace, a unit or tar file; nil where the message names it), and what.
public struct RunWarning: Sendable, Codable, Equatable {
    /// The kind of warning; a struct so that new codes can come without breaking a `switch`.
    public struct Code: RawRepresentable, Sendable, Codable, Equatable, Hashable {
        public var rawValue: String
        public init(rawValue: String) { self.rawValue = rawValue }
        public init(from decoder: any Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
        public func encode(to encoder: any Encoder) throws {
            var c = encoder.singleValueContainer()
            try c.encode(rawValue)
        }

        /// The partition table (a truncated image, an unusable primary GPT, an EBR loop).
        public static let partitionTable = Code(rawValue: "partition_table")
        /// The mount plan (units, fstab, bootloader state, profiles).
        public static let plan = Code(rawValue: "plan")
        /// Mount options that cannot be applied (vfat's uid=/umask=...).
        public static let mountOptions = Code(rawValue: "mount_options")
        /// The namespace engine (a bind source missing, an overlay layer unreadable).
        public static let namespace = Code(rawValue: "namespace")
        /// The walk (an unreadable directory, a loop cut).
        public static let walk = Code(rawValue: "walk")
        /// Journal replay of an ext3/ext4 partition.
        public static let journal = Code(rawValue: "journal")
        /// An `--add-tar` member that could not be placed.
        public static let addTar = Code(rawValue: "add_tar")
        /// ext4's link limit: a hardlink path written as a copy of its file (65,000 links already).
        public static let linkLimit = Code(rawValue: "link_limit")
        /// An entry written with a loss or skipped (also in `read_errors`).
        public static let readError = Code(rawValue: "read_error")
        /// The Docker inventory (`diff`: a data-root that could not be read).
        public static let docker = Code(rawValue: "docker")
        /// A `--device` file that no btrfs the run read took as a member.
        public static let device = Code(rawValue: "device")
    }

    public var code: Code
    public var place: String?
    public var message: String

    public init(code: Code, place: String?, message: String) {
        self.code = code
        self.place = place
        self.message = message
    }

    /// "place: message", as in `warnings`.
    public var text: String { place.map { "\($0): \(message)" } ?? message }
}

