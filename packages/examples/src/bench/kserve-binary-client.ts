/**
 * A minimal client of the KServe v2 binary tensor data extension, for `pnpm bench:pipeline`:
 * one float32 input in, every output back as binary data.
 *
 * @module
 */
import type { TensorData } from '@dinfer/core';

/** The model's input and output names, from `GET /v2/models/{name}`. */
export interface KServeSignature {
  readonly model: string;
  readonly input: string;
  readonly output: string;
}

/** Reads the first input's and output's names of `model`. */
export async function kserveSignature(baseUrl: string, model: string): Promise<KServeSignature> {
  const response = await fetch(`${baseUrl}/v2/models/${encodeURIComponent(model)}`);
  if (!response.ok) throw new Error(`GET /v2/models/${model}: HTTP ${response.status}`);
  const meta = (await response.json()) as { inputs: { name: string }[]; outputs: { name: string }[] };
  return { model, input: meta.inputs[0]!.name, output: meta.outputs[0]!.name };
}

/**
 * Sends `input` as one binary KServe v2 request and returns the first output's values.
 *
 * @throws Error for an answer that is not a 200 binary answer with one float32 output.
 */
export async function kserveBinaryInfer(
  baseUrl: string,
  signature: KServeSignature,
  input: TensorData,
): Promise<Float32Array> {
  const data = input.data as Float32Array;
  const header = new TextEncoder().encode(
    JSON.stringify({
      inputs: [
        {
          name: signature.input,
          shape: input.shape,
          datatype: 'FP32',
          parameters: { binary_data_size: data.byteLength },
        },
      ],
      parameters: { binary_data_output: true },
    }),
  );
  const body = new Uint8Array(header.byteLength + data.byteLength);
  body.set(header, 0);
  body.set(new Uint8Array(data.buffer, data.byteOffset, data.byteLength), header.byteLength);
  const response = await fetch(`${baseUrl}/v2/models/${encodeURIComponent(signature.model)}/infer`, {
    method: 'POST',
    headers: {
      'content-type': 'application/octet-stream',
      'inference-header-content-length': String(header.byteLength),
    },
    body,
  });
  const bytes = new Uint8Array(await response.arrayBuffer());
  if (response.status !== 200) {
    throw new Error(
      `POST infer: HTTP ${response.status}: ${new TextDecoder().decode(bytes.subarray(0, 300))}`,
    );
  }
  const jsonLength = Number(response.headers.get('inference-header-content-length'));
  if (!Number.isInteger(jsonLength) || jsonLength <= 0) throw new Error('the answer is not binary');
  const answer = JSON.parse(new TextDecoder().decode(bytes.subarray(0, jsonLength))) as {
    outputs: { datatype: string; parameters?: { binary_data_size?: number } }[];
  };
  const size = answer.outputs[0]?.parameters?.binary_data_size;
  if (answer.outputs[0]?.datatype !== 'FP32' || size === undefined) throw new Error('unexpected output');
  // Copied out: the view would otherwise keep the whole answer alive.
  return new Float32Array(bytes.slice(jsonLength, jsonLength + size).buffer);
}
