import { waitFor } from '../../support/wait';

export { waitFor };
/** Shared bits of the services specs. */
export const API_KEY = 'sim-admin-api-key-0123456789';
