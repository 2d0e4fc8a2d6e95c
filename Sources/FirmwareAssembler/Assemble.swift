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
    public var warnings: [String]
    /// Entries that could not be read, with their paths.
    public var readErrors: [String]
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
        case skippedSockets = "skipped_sockets", warnings, readErrors = "read_errors", docker, rehost, journals
        case hardlinkMode = "hardlink_mode", copiedHardlinks = "copied_hardlinks", copiedBytes = "copied_bytes"
        case format, ext4
    }

    public func json() throws -> String {
        try JSONText.pretty(self)
    }
}

/// The tool's version, written into reports.
public let fwassembleVersion = "0.1.0"

extension RehostWalk: ArchivableWalk {}

extension AssembleReport {
    /// The partitions whose journal needed recovery (`journals`, absent when none did), and
    /// their replay warnings among the report's warnings.
    mutating func addJournals(of booted: BootedNamespace) {
        let journals = booted.partitions.journals.sorted { $0.key < $1.key }.map { index, j in
            PartitionJournal(index: index, partition: j.description, journal: j.replay)
        }
        guard !journals.isEmpty else { return }
        self.journals = journals
        warnings += journals.flatMap { j in j.journal.warnings.map { "\(j.partition): journal: \($0)" } }
    }
}

