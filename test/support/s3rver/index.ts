export { FixedS3rver, S3_SERVER_CREDENTIALS, startS3Server, type S3Server, type S3ServerOptions } from './s3-server.ts';
