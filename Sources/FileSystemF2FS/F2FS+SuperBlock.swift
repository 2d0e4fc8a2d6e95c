import DiskImage

extension F2FS {
    /// The superblock (`struct f2fs_super_block`, 3072 bytes at 1024 in blocks 0 and 1).
    public struct SuperBlock: Sendable {
        /// 0 `magic`.
        public var magic: UInt32
        /// 4 `major_ver`, 6 `minor_ver`.
        public var majorVersion: UInt16
        public var minorVersion: UInt16
        /// 8 `log_sectorsize`, 12 `log_sectors_per_block`, 16 `log_blocksize`, 20 `log_blocks_per_seg`.
        public var logSectorSize: UInt32
        public var logSectorsPerBlock: UInt32
        public var logBlockSize: UInt32
        public var logBlocksPerSegment: UInt32
        /// 24 `segs_per_sec`, 28 `secs_per_zone`.
        public var segmentsPerSection: UInt32
        public var sectionsPerZone: UInt32
        /// 32 `checksum_offset`: where `crc` is (3068 when the sb_checksum feature is set).
        public var checksumOffset: UInt32
        /// 36 `block_count`.
        public var blockCount: UInt64
        /// 48 `segment_count`; 52..68 `segment_count_{ckpt,sit,nat,ssa,main}`.
        public var segmentCount: UInt32
        public var checkpointSegments: UInt32
        public var sitSegments: UInt32
        public var natSegments: UInt32
        public var ssaSegments: UInt32
        public var mainSegments: UInt32
        /// 72 `segment0_blkaddr`, 76 `cp_blkaddr`, 80 `sit_blkaddr`, 84 `nat_blkaddr`,
        /// 88 `ssa_blkaddr`, 92 `main_blkaddr`.
        public var segment0Address: UInt32
        public var checkpointAddress: UInt32
        public var sitAddress: UInt32
        public var natAddress: UInt32
        public var ssaAddress: UInt32
        public var mainAddress: UInt32
        /// 96 `root_ino`.
        public var rootInode: UInt32
        /// 108 `uuid[16]`.
        public var uuid: [UInt8]
        /// 124 `volume_name[512]` (UTF-16LE), up to the first NUL.
        public var volumeName: String
        /// 1664 `cp_payload`: extra checkpoint blocks holding the SIT (and large NAT) bitmaps.
        public var checkpointPayload: UInt32
        /// 2180 `feature`.
        public var features: Features
        /// 2184 `encryption_level`.
        public var encryptionLevel: UInt8
        /// 2201 `devs[0].path`: a multi-device filesystem names its devices here.
        public var firstDevicePath: [UInt8]
        /// 2758 `s_encoding`: the casefold encoding (1 = UTF-8 12.1).
        public var encoding: UInt16
        /// 3068 `crc`.
        public var crc: UInt32

        static let size = 3072
        static let crcOffset = 3068

        public init(_ c: ByteCursor) throws {
            magic = try c.u32le(at: 0)
            majorVersion = try c.u16le(at: 4)
            minorVersion = try c.u16le(at: 6)
            logSectorSize = try c.u32le(at: 8)
            logSectorsPerBlock = try c.u32le(at: 12)
            logBlockSize = try c.u32le(at: 16)
            logBlocksPerSegment = try c.u32le(at: 20)
            segmentsPerSection = try c.u32le(at: 24)
            sectionsPerZone = try c.u32le(at: 28)
            checksumOffset = try c.u32le(at: 32)
            blockCount = try c.u64le(at: 36)
            segmentCount = try c.u32le(at: 48)
            checkpointSegments = try c.u32le(at: 52)
            sitSegments = try c.u32le(at: 56)
            natSegments = try c.u32le(at: 60)
            ssaSegments = try c.u32le(at: 64)
            mainSegments = try c.u32le(at: 68)
            segment0Address = try c.u32le(at: 72)
            checkpointAddress = try c.u32le(at: 76)
            sitAddress = try c.u32le(at: 80)
            natAddress = try c.u32le(at: 84)
            ssaAddress = try c.u32le(at: 88)
            mainAddress = try c.u32le(at: 92)
            rootInode = try c.u32le(at: 96)
            uuid = try c.array(at: 108, count: 16)
            var units: [UInt16] = []
            for i in 0..<512 {
                let unit = try c.u16le(at: 124 + 2 * i)
                if unit == 0 { break }
                units.append(unit)
            }
            volumeName = String(decoding: units, as: UTF16.self)
            checkpointPayload = try c.u32le(at: 1664)
            features = Features(rawValue: try c.u32le(at: 2180))
            encryptionLevel = try c.u8(at: 2184)
            firstDevicePath = try c.array(at: 2201, count: 64)
            encoding = try c.u16le(at: 2758)
            crc = try c.u32le(at: Self.crcOffset)
        }

        /// The block after the main area (the filesystem's end as the layout computes it).
        var mainEnd: UInt64 { UInt64(mainAddress) + UInt64(mainSegments) * UInt64(F2FS.blocksPerSegment) }
        /// `max_nid`: NAT_ENTRY_PER_BLOCK times the blocks of one NAT copy.
        var maximumNid: UInt64 { UInt64(natSegments / 2) * UInt64(F2FS.blocksPerSegment) * UInt64(F2FS.natEntriesPerBlock) }

        /// The checks of Linux's `sanity_check_raw_super` that this reader relies on: magic,
        /// CRC (with sb_checksum), 4 KiB blocks of 512 per segment, areas that follow each other
        /// (`check_area_boundary`), one device. Throws `.corrupt` or `.unsupported`.
        func validate(_ bytes: [UInt8]) throws {
            guard magic == F2FS.magic else {
                throw FWError.corrupt("not an f2fs filesystem: bad superblock magic 0x\(String(magic, radix: 16)) (expected 0xf2f52010)")
            }
            if features.contains(.superBlockChecksum) {
                guard checksumOffset == UInt32(Self.crcOffset) else {
                    throw FWError.corrupt("f2fs superblock checksum offset \(checksumOffset) is not \(Self.crcOffset)")
                }
                let computed = F2FS.crc(bytes[0..<Self.crcOffset])
                guard computed == crc else {
                    throw FWError.corrupt("f2fs superblock CRC 0x\(String(crc, radix: 16)) does not match its contents (0x\(String(computed, radix: 16)))")
                }
            }
            guard logBlockSize == 12 else {
                throw FWError.unsupported("f2fs block size 2^\(logBlockSize) is not supported (only 4096-byte blocks are)")
            }
            guard (9...12).contains(logSectorSize), logSectorSize + logSectorsPerBlock == 12, logBlocksPerSegment == 9 else {
                throw FWError.corrupt("f2fs superblock geometry is invalid (log sector size \(logSectorSize), sectors per block 2^\(logSectorsPerBlock), blocks per segment 2^\(logBlocksPerSegment))")
            }
            try validateAreas()
            guard firstDevicePath.first == 0 else {
                throw FWError.unsupported("f2fs spread over several devices (multi-device, mkfs.f2fs -c) is not supported")
            }
            guard !features.contains(.blockZoned) else {
                throw FWError.unsupported("f2fs on a zoned block device (blkzoned) is not supported")
            }
        }

        private func validateAreas() throws {
            let perSegment = UInt64(F2FS.blocksPerSegment)
            let cp = UInt64(checkpointAddress), sit = UInt64(sitAddress), nat = UInt64(natAddress)
            let ssa = UInt64(ssaAddress), main = UInt64(mainAddress)
            guard segment0Address == checkpointAddress,
                  cp + UInt64(checkpointSegments) * perSegment == sit,
                  sit + UInt64(sitSegments) * perSegment == nat,
                  nat + UInt64(natSegments) * perSegment == ssa,
                  ssa + UInt64(ssaSegments) * perSegment == main else {
                throw FWError.corrupt("f2fs superblock areas do not follow each other (checkpoint \(cp), SIT \(sit), NAT \(nat), SSA \(ssa), main \(main))")
            }
            guard checkpointSegments >= 2, natSegments >= 2, natSegments % 2 == 0, mainSegments > 0,
                  mainEnd <= UInt64(UInt32.max), mainEnd <= blockCount else {
                throw FWError.corrupt("f2fs superblock segment counts are invalid (checkpoint \(checkpointSegments), NAT \(natSegments), main \(mainSegments), \(blockCount) blocks)")
            }
            guard checkpointPayload < F2FS.blocksPerSegment - 2 - 6 else {
                throw FWError.corrupt("f2fs checkpoint payload of \(checkpointPayload) blocks does not fit in a segment")
            }
            guard rootInode >= 3, UInt64(rootInode) < maximumNid else {
                throw FWError.corrupt("f2fs root inode \(rootInode) is outside the node ids 3..<\(maximumNid)")
            }
        }
    }

    /// A checkpoint pack's first block (`struct f2fs_checkpoint`).
    public struct Checkpoint: Sendable {
        /// 0 `checkpoint_ver`.
        public var version: UInt64
        /// 36 `cur_node_segno[8]`; 84 `cur_data_segno[8]`; 116 `cur_data_blkoff[8]`.
        public var currentDataSegments: [UInt32]
        /// 132 `ckpt_flags`.
        public var flags: UInt32
        /// 136 `cp_pack_total_block_count`.
        public var packBlocks: UInt32
        /// 140 `cp_pack_start_sum`: the first summary block, from the pack's start.
        public var summaryStart: UInt32
        /// 144 `valid_node_count`, 148 `valid_inode_count`.
        public var validNodes: UInt32
        public var validInodes: UInt32
        /// 156 `sit_ver_bitmap_bytesize`, 160 `nat_ver_bitmap_bytesize`.
        public var sitBitmapSize: UInt32
        public var natBitmapSize: UInt32
        /// 164 `checksum_offset`.
        public var checksumOffset: UInt32
        /// The block address of the pack's first block.
        public var packAddress: UInt32

        /// `CP_MIN_CHKSUM_OFFSET` (where `sit_nat_version_bitmap` starts) and `CP_CHKSUM_OFFSET`.
        static let bitmapOffset = 192
        static let defaultChecksumOffset = 4092

        init(_ c: ByteCursor, at address: UInt32) throws {
            version = try c.u64le(at: 0)
            currentDataSegments = try (0..<8).map { try c.u32le(at: 84 + 4 * $0) }
            flags = try c.u32le(at: 132)
            packBlocks = try c.u32le(at: 136)
            summaryStart = try c.u32le(at: 140)
            validNodes = try c.u32le(at: 144)
            validInodes = try c.u32le(at: 148)
            sitBitmapSize = try c.u32le(at: 156)
            natBitmapSize = try c.u32le(at: 160)
            checksumOffset = try c.u32le(at: 164)
            packAddress = address
        }

        /// The CRC at `checksum_offset`, as `f2fs_checkpoint_chksum` computes it: over the bytes
        /// before it and, when it is not at the block's end, on over the bytes after it.
        static func checksumIsValid(_ block: [UInt8]) -> Bool {
            let c = ByteCursor(block, context: "f2fs checkpoint")
            guard block.count == F2FS.blockSize,
                  let offset = c.integerIfPresent(at: 164, endianness: .little, as: UInt32.self).map(Int.init),
                  (bitmapOffset...defaultChecksumOffset).contains(offset),
                  let stored = c.integerIfPresent(at: offset, endianness: .little, as: UInt32.self) else { return false }
            var computed = F2FS.crc(block[0..<offset])
            if offset < defaultChecksumOffset {
                computed = F2FS.crc(block[(offset + 4)...], seed: computed)
            }
            return computed == stored
        }
    }
}
