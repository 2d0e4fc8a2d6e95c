import Codecs
import DiskImage

extension SquashFS {
    /// One decompressed metadata block and where the next one starts.
    struct MetadataBlock {
        var data: [UInt8]
        /// Byte address of the following block in the chain (always after this one).
        var next: UInt64
    }

    /// Where a metadata read is: a block's byte address in the image and an offset in its
    /// decompressed data. Chains only move forward (`next` is past the current block), so a
    /// sequence of reads cannot loop.
    struct MetadataPosition: Sendable {
        var block: UInt64
        var offset: Int
    }

    /// Reads metadata blocks (2-byte header: bit 15 uncompressed, bits 0..14 stored length; then
    /// at most 8 KiB once decompressed), keeping a bounded LRU cache of decompressed blocks.
    final class MetadataStore {
        let source: any ByteSource
        let decompressor: any Decompressor
        let bytesUsed: UInt64
        /// Most decompressed blocks kept (64 x 8 KiB = 512 KiB).
        static let cacheCapacity = 64
        private var cache: [UInt64: (block: MetadataBlock, used: UInt64)] = [:]
        private var clock: UInt64 = 0

        init(source: any ByteSource, decompressor: any Decompressor, bytesUsed: UInt64) {
            self.source = source
            self.decompressor = decompressor
            self.bytesUsed = bytesUsed
        }

        /// The metadata block at absolute byte `address`, which with its header must end at or
        /// before `limit` (the end of its table).
        func block(at address: UInt64, limit: UInt64, what: String) throws -> MetadataBlock {
            clock &+= 1
            if let hit = cache[address] {
                cache[address] = (hit.block, clock)
                return hit.block
            }
            let end = min(limit, bytesUsed)
            guard address < end, end - address >= 2 else {
                throw FWError.corrupt("\(what): metadata block at \(address) is outside its table (which ends at \(end))")
            }
            let header = try ByteCursor(source.bytes(at: address, count: 2), context: "\(what) metadata header").u16le(at: 0)
            let stored = Int(header & ~SquashFS.metadataUncompressedBit)
            let compressed = header & SquashFS.metadataUncompressedBit == 0
            guard stored > 0, stored <= SquashFS.metadataBlockSize else {
                throw FWError.corrupt("\(what): metadata block at \(address) has a bad stored length \(stored)")
            }
            let next = address + 2 + UInt64(stored)
            guard next <= end else {
                throw FWError.corrupt("\(what): metadata block at \(address) (\(stored) bytes) runs past the end of its table at \(end)")
            }
            let raw = try source.bytes(at: address + 2, count: stored)
            let data: [UInt8]
            if compressed {
                do {
                    data = try decompressor.decompress(raw, maximumOutput: SquashFS.metadataBlockSize)
                } catch let error as FWError {
                    throw FWError(error.code, "\(what): metadata block at \(address): \(error.message)", cause: error)
                }
            } else {
                data = raw
            }
            guard !data.isEmpty else {
                throw FWError.corrupt("\(what): metadata block at \(address) is empty")
            }
            let block = MetadataBlock(data: data, next: next)
            if cache.count >= MetadataStore.cacheCapacity,
               let oldest = cache.min(by: { $0.value.used < $1.value.used })?.key {
                cache.removeValue(forKey: oldest)
            }
            cache[address] = (block, clock)
            return block
        }

        /// Reads `count` bytes at `position`, following the chain across blocks, and advances
        /// `position` past them. Every block must end before `limit`.
        func read(_ count: Int, at position: inout MetadataPosition, limit: UInt64, what: String) throws -> [UInt8] {
            var result: [UInt8] = []
            result.reserveCapacity(min(count, SquashFS.metadataBlockSize))
            while result.count < count {
                let block = try block(at: position.block, limit: limit, what: what)
                guard position.offset >= 0, position.offset <= block.data.count else {
                    throw FWError.corrupt("\(what): offset \(position.offset) is outside the \(block.data.count)-byte metadata block at \(position.block)")
                }
                if position.offset == block.data.count {
                    position = MetadataPosition(block: block.next, offset: 0)
                    continue
                }
                let take = min(count - result.count, block.data.count - position.offset)
                result.append(contentsOf: block.data[position.offset..<(position.offset + take)])
                position.offset += take
            }
            return result
        }

        /// Decodes a 64-bit metadata reference against `tableStart`.
        static func position(reference: UInt64, tableStart: UInt64, what: String) throws -> MetadataPosition {
            let blockOffset = (reference >> 16) & 0xFFFF_FFFF
            let offset = Int(reference & 0xFFFF)
            guard reference >> 48 == 0, offset < SquashFS.metadataBlockSize else {
                throw FWError.corrupt("\(what): bad metadata reference 0x\(String(reference, radix: 16))")
            }
            let (address, overflow) = tableStart.addingReportingOverflow(blockOffset)
            guard !overflow else {
                throw FWError.corrupt("\(what): metadata reference 0x\(String(reference, radix: 16)) overflows")
            }
            return MetadataPosition(block: address, offset: offset)
        }
    }
}
