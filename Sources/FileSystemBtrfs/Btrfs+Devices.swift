import DiskImage

/// Another device of a multi-device btrfs (a RAID member) as the user gives it: its bytes and
/// its name for messages ("raid1-2.img", "member.img partition 2"). The reader keeps the ones
/// whose superblock names the same filesystem (fsid) and matches the chunk tree's device item.
public struct BtrfsDevice: Sendable {
    public var source: any ByteSource
    public var name: String
    /// Given by the user (`--device`): listed in `ignoredDevices` when it is not a member. False
    /// for a candidate found on its own (another btrfs partition of the same disk), which is
    /// passed over silently when it belongs to another filesystem (or is an A/B copy).
    public var isGiven: Bool

    public init(source: any ByteSource, name: String, isGiven: Bool = true) {
        self.source = source
        self.name = name
        self.isGiven = isGiven
    }
}

extension Btrfs {
    /// The devices of one filesystem by device id, and the chunk map over them: logical
    /// addresses to bytes, from any present copy.
    final class Volume {
        struct Member {
            var source: any ByteSource
            var name: String
            /// `dev_item.uuid` of the member's superblock.
            var deviceUUID: [UInt8]
        }

        private(set) var members: [UInt64: Member]
        var chunks = ChunkMap()
        /// `num_devices` of the superblock.
        let deviceCount: UInt64

        init(members: [UInt64: Member], deviceCount: UInt64) {
            self.members = members
            self.deviceCount = deviceCount
        }

        func add(_ id: UInt64, _ member: Member) { members[id] = member }

        /// The present devices as "1 (disk.img), 2 (raid1-2.img)", for messages.
        var presentDescription: String {
            members.keys.sorted().map { "\($0) (\(members[$0]?.name ?? ""))" }.joined(separator: ", ")
        }

        /// Reads bytes from `logical` on into `buffer`, as many as are contiguous there (at least
        /// one); returns how many. `mirror` picks among the present copies (DUP, RAID1*, RAID10):
        /// nil when there is no such copy. A RAID5/RAID6 data stripe is rebuilt from the row's
        /// other data stripes and P as mirror 0 when its device is missing, as mirror 1 when it
        /// is present (another copy to try when a checksum fails, as the kernel recovers); any
        /// other address with no present copy is an error naming the missing devices.
        func read(_ logical: UInt64, into buffer: UnsafeMutableRawBufferPointer, mirror: Int = 0) throws -> Int? {
            let location = try chunks.locate(logical)
            let n = Int(min(UInt64(buffer.count), location.contiguous))
            let part = UnsafeMutableRawBufferPointer(rebasing: buffer[0..<n])
            let present = location.copies.compactMap { p in members[p.deviceID].map { (p, $0) } }
            if mirror < present.count {
                try present[mirror].1.source.readExactly(at: present[mirror].0.offset, into: part)
                return n
            }
            if let row = location.row {
                let raid6 = location.chunk.profile.contains(.raid6)
                let ways = Parity.ways(row.map { members[$0.deviceID] != nil }, dataIndex: location.dataIndex, raid6: raid6)
                if mirror - present.count < ways.count {
                    try Parity.rebuild(ways[mirror - present.count], dataIndex: location.dataIndex,
                                       stripes: row.map { p in members[p.deviceID].map { (p.offset, $0.source) } }, raid6: raid6, into: part)
                    return n
                }
                guard mirror == 0 else { return nil }
                throw missing(row, location.chunk, logical: logical, rebuilding: true)
            }
            guard mirror == 0 else { return nil }
            throw missing(location.copies, location.chunk, logical: logical)
        }

        /// `count` bytes from `logical` from the copy `mirror` (nil when there is no such copy).
        func bytes(_ logical: UInt64, count: Int, mirror: Int = 0) throws -> [UInt8]? {
            var out = [UInt8](repeating: 0, count: count)
            var done = 0
            while done < count {
                let (next, overflow) = logical.addingReportingOverflow(UInt64(done))
                guard !overflow else { throw FWError.corrupt("btrfs logical address \(logical) + \(done) overflows") }
                let n = try out.withUnsafeMutableBytes {
                    try read(next, into: UnsafeMutableRawBufferPointer(rebasing: $0[done...]), mirror: mirror)
                }
                guard let n else { return nil }
                done += n
            }
            return out
        }

        private func missing(_ placements: [Placement], _ chunk: Chunk, logical: UInt64, rebuilding: Bool = false) -> FWError {
            let absent = Set(placements.map(\.deviceID).filter { members[$0] == nil }).sorted()
            let ids = absent.map(String.init).joined(separator: ", ")
            let how = rebuilding ? ", and the data cannot be rebuilt from parity with \(absent.count) device(s) missing" : ""
            return FWError(.notFound, "btrfs: missing device \(ids) (devid) for the \(chunk.profile.name) chunk at logical \(chunk.logical) "
                + "(reading logical \(logical))\(how); the filesystem has \(deviceCount) device(s), present: \(presentDescription) "
                + "(give the others with --device)")
        }
    }
}
